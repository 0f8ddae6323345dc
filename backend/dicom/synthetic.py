"""Synthetic DICOM studies generated with pydicom, for tests, benchmarks and the demo.

Every value is made up. A study is one StudyInstanceUID with several series; each instance
carries the identifying attributes a real scanner writes (names, IDs, birth date, address,
institution, physicians, accession number, dates, station, device serial number), a nested
sequence that references another instance by UID (so UID remapping can be checked end to end),
optionally a private block holding a copy of the patient's name and the ``BurnedInAnnotation``
flag. Pixel data is a small gradient (no numpy needed).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

PRIVATE_CREATOR = "FERRY SYNTHETIC"


@dataclass
class SeriesSpec:
    number: int
    description: str
    instances: int
    modality: str = "MR"


@dataclass
class StudySpec:
    patient_name: str = "DOE^JANE^Q"
    patient_id: str = "PID-0042317"
    birth_date: str = "19610412"
    study_date: str = "20261103"
    description: str = "MRI BRAIN W/O CONTRAST"
    accession: str = "ACC-778812"
    institution: str = "St. Example General Hospital"
    series: Sequence[SeriesSpec] = field(default_factory=lambda: (
        SeriesSpec(1, "T1 MPRAGE SAG", 3), SeriesSpec(2, "T2 FLAIR AX", 2)))
    private: bool = True
    burned_in: bool = False
    study_uid: str = ""
    rows: int = 16  # pixel matrix (rows x rows, 16-bit)
    padding: int = 0  # extra bytes of pixel data per instance (to make large files)


@dataclass
class WrittenStudy:
    study_uid: str
    files: list[Path]
    series_uids: dict[int, str]
    sop_uids: list[str]


def _pixels(rows: int, seed: int, padding: int) -> bytes:
    values = [(seed * 7 + i) % 4096 for i in range(rows * rows)]
    data = struct.pack(f"<{len(values)}H", *values)
    return data + bytes(padding + (padding % 2))


def make_instance(spec: StudySpec, study_uid: str, series: SeriesSpec, series_uid: str,
                  instance: int, sop_uid: str, previous_uid: str | None,
                  frame_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = spec.study_date
    ds.SeriesDate = spec.study_date
    ds.AcquisitionDate = spec.study_date
    ds.ContentDate = spec.study_date
    ds.StudyTime = "101502"
    ds.SeriesTime = "101930"
    ds.ContentTime = "102011"
    ds.AccessionNumber = spec.accession
    ds.Modality = series.modality
    ds.Manufacturer = "Ferry Imaging"
    ds.InstitutionName = spec.institution
    ds.InstitutionAddress = "1 Example Road, Springfield"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StationName = "MRSCAN01"
    ds.StudyDescription = spec.description
    ds.SeriesDescription = series.description
    ds.PerformingPhysicianName = "GREY^MEREDITH"
    ds.OperatorsName = "TECH^TERRY"
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = "F"
    ds.PatientAge = "065Y"
    ds.PatientAddress = "12 Elm Street, Springfield"
    ds.OtherPatientIDs = "MRN-99812"
    ds.DeviceSerialNumber = "SN-4471"
    ds.ProtocolName = series.description
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.StudyID = "S1234"
    ds.SeriesNumber = series.number
    ds.InstanceNumber = instance
    request = Dataset()
    request.RequestedProcedureID = "RP-5561"
    request.ScheduledProcedureStepID = "SPS-5561"
    ds.RequestAttributesSequence = DicomSequence([request])
    if previous_uid is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID = MRImageStorage
        ref.ReferencedSOPInstanceUID = previous_uid
        ds.ReferencedImageSequence = DicomSequence([ref])
    if spec.burned_in:
        ds.BurnedInAnnotation = "YES"
    if spec.private:
        block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
        block.add_new(0x10, "LO", spec.patient_name.replace("^", " "))
        block.add_new(0x11, "LO", f"exam of {spec.patient_id}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = _pixels(spec.rows, instance, spec.padding)
    return ds


def write_study(folder: Path, spec: StudySpec | None = None, *, prefix: str = "") -> WrittenStudy:
    """Write ``spec`` as ``folder/<prefix>SE<n>/IM<k>.dcm`` files; returns the UIDs used."""
    spec = spec or StudySpec()
    study_uid = spec.study_uid or generate_uid()
    frame_uid = generate_uid()
    files: list[Path] = []
    series_uids: dict[int, str] = {}
    sops: list[str] = []
    for series in spec.series:
        series_uid = generate_uid()
        series_uids[series.number] = series_uid
        sub = Path(folder) / f"{prefix}SE{series.number:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        previous: str | None = None
        for k in range(1, series.instances + 1):
            sop = generate_uid()
            ds = make_instance(spec, study_uid, series, series_uid, k, sop, previous, frame_uid)
            path = sub / f"IM{k:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
            sops.append(sop)
            previous = sop
    return WrittenStudy(study_uid, files, series_uids, sops)
