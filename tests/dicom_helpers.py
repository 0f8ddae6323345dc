"""DICOM studies for tests, written with pydicom (backend/dicom/synthetic.py), and the values
planted in them, so tests can assert that a check finds each and a de-identified copy holds none.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from pydicom.data import get_testdata_file

from backend.dicom.synthetic import SeriesSpec, StudySpec, WrittenStudy, write_study

# Bundled with pydicom itself (never downloaded): CT, MR and RT plan samples.
SAMPLES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")

FIRST = StudySpec(
    patient_name="DOE^JANE^Q", patient_id="PID-0042317", accession="ACC-778812",
    series=(SeriesSpec(1, "T1 MPRAGE SAG", 3), SeriesSpec(2, "T2 FLAIR AX", 2),
            SeriesSpec(3, "DWI", 4)),
)
SECOND = StudySpec(
    patient_name="ROE^RICHARD", patient_id="PID-5550123", accession="ACC-120934",
    study_date="20261105", description="CT HEAD", institution="North Example Clinic",
    series=(SeriesSpec(7, "CT HEAD AXIAL", 2, "CT"),),
)

# Values written into every instance of FIRST by backend/dicom/synthetic.py
PLANTED_VALUES = (
    b"DOE^JANE^Q", b"PID-0042317", b"19610412", b"ACC-778812", b"St. Example General Hospital",
    b"1 Example Road", b"HOUSE^GREGORY", b"GREY^MEREDITH", b"TECH^TERRY", b"12 Elm Street",
    b"MRN-99812", b"SN-4471", b"MRSCAN01", b"RP-5561", b"SPS-5561", b"20261103",
    b"MRI BRAIN W/O CONTRAST", b"T1 MPRAGE SAG", b"DOE JANE Q", b"exam of PID-0042317",
    b"FERRY SYNTHETIC",
)

# The check must report each of these for FIRST (keyword or special key)
PLANTED_FINDINGS = {
    "(0010,0010)": "PatientName", "(0010,0020)": "PatientID", "(0010,0030)": "PatientBirthDate",
    "(0010,1040)": "PatientAddress", "(0010,1000)": "OtherPatientIDs",
    "(0010,1010)": "PatientAge", "(0010,0040)": "PatientSex",
    "(0008,0080)": "InstitutionName", "(0008,0081)": "InstitutionAddress",
    "(0008,0090)": "ReferringPhysicianName", "(0008,1050)": "PerformingPhysicianName",
    "(0008,1070)": "OperatorsName", "(0008,0050)": "AccessionNumber",
    "(0008,0020)": "StudyDate", "(0008,0021)": "SeriesDate", "(0008,0022)": "AcquisitionDate",
    "(0008,0023)": "ContentDate", "(0008,0030)": "StudyTime", "(0008,1010)": "StationName",
    "(0018,1000)": "DeviceSerialNumber", "(0020,0010)": "StudyID",
    "(0008,1030)": "StudyDescription", "(0008,103E)": "SeriesDescription",
    "(0018,1030)": "ProtocolName", "(0040,0275)": "RequestAttributesSequence",
    "(0040,1001)": "RequestedProcedureID", "(0040,0009)": "ScheduledProcedureStepID",
    "(0020,000D)": "StudyInstanceUID", "(0020,000E)": "SeriesInstanceUID",
    "(0008,0018)": "SOPInstanceUID", "(0002,0003)": "MediaStorageSOPInstanceUID",
    "(0020,0052)": "FrameOfReferenceUID", "(0008,1155)": "ReferencedSOPInstanceUID",
    "private": "private attributes (odd groups)",
    "identity-not-removed": "PatientIdentityRemoved missing or not YES",
}


def study(folder: Path, spec: StudySpec = FIRST, *, prefix: str = "") -> WrittenStudy:
    return write_study(folder, spec, prefix=prefix)


def mixed_folder(folder: Path) -> tuple[WrittenStudy, WrittenStudy]:
    """Two studies in one folder, plus a report that is not DICOM."""
    first = write_study(folder, FIRST)
    second = write_study(folder, SECOND, prefix="other-")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 not dicom\n" * 20)
    return first, second


def samples_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLES:
        shutil.copy(get_testdata_file(name), folder / name)
    return folder


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return dest
