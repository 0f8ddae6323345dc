"""De-identifying a study into a zip: the Basic Profile applied with pydicom, checked, streamed.

Each instance is read in full (pixel data included), changed in memory, checked again with
:func:`backend.dicom.checker.check_dataset`, and written straight into the zip stream the
caller gives (one instance in memory at a time; no second copy of the study on disk). The
actions are those of :mod:`backend.dicom.profile` (DICOM PS3.15 Annex E, Basic Profile):

- X attributes, private attributes, overlay and curve data: removed;
- Z attributes: emptied, except PatientName and PatientID, which get the study's pseudonyms
  (``FERRY-<code>`` / ``FERRY^<code>``; the Profile allows a dummy there) so results can be
  linked back through the mapping;
- D attributes: a dummy (``ANONYMOUS`` for names);
- U attributes and every other UID that is not a registered DICOM UID: a new ``2.25.`` UID
  derived from the original and a per-run secret, so the same original UID always gets the same
  new one within a run: series, instances and the references between them keep their structure;
- every other person name: emptied;
- PatientIdentityRemoved = YES, DeidentificationMethod and its code sequence (DCM 113100),
  LongitudinalTemporalInformationModified = REMOVED (dates are emptied, not shifted).

Zip member names are made anew (``SE<series>/IM<instance>.dcm``, ordinals in SeriesNumber and
InstanceNumber order) because folder and file names often carry the patient's name. Non-DICOM
files are left out and listed. A file that declares ``BurnedInAnnotation`` = YES is refused
unless ``allow_burned_in``: its pixels show text (names, dates) that no header edit can remove;
the flag is kept as YES in the copy, so a receiver still knows.

Why pydicom's own tools and not dicognito or deid: see docs/cases.md ("De-identification").
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, generate_uid

from backend.dicom.checker import check_dataset
from backend.dicom.profile import ATTRIBUTES, is_overlay_or_curve
from backend.dicom.reader import FileHeader, HeaderSet, read_local
from backend.errors import FerryError, IntegrityError, UsageError
from backend.names import display_name

METHOD = "PS3.15 Annex E Basic Profile (Ferry, pydicom)"  # LO: at most 64 characters
_DUMMY = {"PN": "ANONYMOUS", "DT": "19000101000000", "DA": "19000101", "TM": "000000"}
_MAX_DEPTH = 16
_PATIENT_NAME = 0x00100010
_PATIENT_ID = 0x00100020


class Pseudonyms:
    """Consistent replacements within one run, derived from a secret that is never stored."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._uids: dict[str, str] = {}

    def _code(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}\0{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:12].upper()

    def uid(self, original: str) -> str:
        original = original.strip()
        new = self._uids.get(original)
        if new is None:
            new = self._uids[original] = str(
                generate_uid(prefix=None, entropy_srcs=[self._secret.hex(), original]))
        return new

    def patient_id(self, original: str) -> str:
        return f"FERRY-{self._code('patient', original.strip())}"

    def patient_name(self, original_id: str) -> str:
        return f"FERRY^{self._code('patient', original_id.strip())}"


@dataclass
class StudyMapping:
    """One study's link from pseudonyms back to the original (identifying: keep it encrypted)."""

    pseudo_study_uid: str
    original_study_uid: str
    pseudo_patient_id: str
    original_patient_id: str
    original_patient_name: str
    original_accession: str = ""
    original_study_date: str = ""
    instances: int = 0
    created_at: float = field(default_factory=time.time)
    case_id: str = ""  # set by whoever sends the zip
    site: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyMapping:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class DeidResult:
    members: list[str]  # zip member names written, in order
    mappings: list[StudyMapping]
    left_out: list[str]  # display-safe: non-DICOM or unreadable files, not in the zip
    burned_in: int = 0  # instances written although they declare burned-in annotation


def _registered(value: str) -> bool:
    """A UID from the DICOM standard's registry (SOP classes, transfer syntaxes...): kept."""
    try:
        uid = UID(value)
    except Exception:
        return False
    return uid.name != str(uid)


def _empty(elem: Any) -> None:
    elem.value = None if elem.VR in ("SQ",) else ""


def _apply(ds: Dataset, pseudo: Pseudonyms, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise UsageError("sequences nest too deeply to de-identify")
    for key in list(ds.keys()):
        tag = int(key)
        if tag & 0xFFFF == 0:
            continue
        if tag >> 16 & 1:
            del ds[tag]
            continue
        elem = ds[tag]
        row = ATTRIBUTES.get(tag)
        vr = str(elem.VR)
        if row is not None:
            if row.action == "X":
                del ds[tag]
            elif row.action == "U":
                if not elem.is_empty:
                    values = elem.value if elem.VM > 1 else [elem.value]
                    new = [pseudo.uid(str(v)) for v in values]
                    elem.value = new if elem.VM > 1 else new[0]
            elif row.action == "D":
                elem.value = _DUMMY.get(vr, "ANONYMOUS") if not elem.is_empty else elem.value
            elif tag in (_PATIENT_NAME, _PATIENT_ID) and depth == 0:
                continue  # the pseudonyms are set once the originals are read (see below)
            else:  # Z
                _empty(elem)
            continue
        if is_overlay_or_curve(tag):
            del ds[tag]
        elif vr == "PN":
            _empty(elem)
        elif vr == "UI" and not elem.is_empty:
            values = elem.value if elem.VM > 1 else [elem.value]
            new = [str(v) if _registered(str(v)) else pseudo.uid(str(v)) for v in values]
            elem.value = new if elem.VM > 1 else new[0]
        elif vr == "SQ" and not elem.is_empty:
            for item in elem.value:
                _apply(item, pseudo, depth + 1)


def deidentify_dataset(ds: Dataset, pseudo: Pseudonyms) -> tuple[str, str]:
    """De-identify ``ds`` in place; returns (original patient ID, original patient name)."""
    original_id = str(ds.get("PatientID", "") or "")
    original_name = str(ds.get("PatientName", "") or "")
    _apply(ds, pseudo)
    ds.PatientID = pseudo.patient_id(original_id)
    ds.PatientName = pseudo.patient_name(original_id)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = DicomSequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return original_id, original_name


def _order(headers: HeaderSet) -> dict[str, dict[str, list[FileHeader]]]:
    """study UID -> series UID -> instances, each in DICOM order."""
    def number(ds: Dataset | None, keyword: str) -> float:
        try:
            return float(ds.get(keyword)) if ds is not None and ds.get(keyword) is not None \
                else 1e12
        except (TypeError, ValueError):
            return 1e12

    studies: dict[str, dict[str, list[FileHeader]]] = defaultdict(lambda: defaultdict(list))
    for fh in headers.dicom:
        ds = fh.dataset
        assert ds is not None
        studies[str(ds.get("StudyInstanceUID", ""))][str(ds.get("SeriesInstanceUID", ""))] \
            .append(fh)
    for series in studies.values():
        for files in series.values():
            files.sort(key=lambda f: (number(f.dataset, "InstanceNumber"), f.relpath))
    for uid, series in studies.items():
        studies[uid] = dict(sorted(
            series.items(),
            key=lambda kv: (number(kv[1][0].dataset, "SeriesNumber"), kv[0])))
    return studies


def burned_in_files(headers: HeaderSet) -> list[str]:
    out = []
    for fh in headers.dicom:
        assert fh.dataset is not None
        if str(fh.dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            out.append(fh.relpath)
    return out


def _opener(source: Path) -> tuple[Callable[[FileHeader], IO[bytes]], Callable[[], None]]:
    if source.is_file():
        zf = zipfile.ZipFile(source)
        return (lambda fh: zf.open(fh.member or fh.relpath)), zf.close
    return (lambda fh: open(source / fh.relpath, "rb")), (lambda: None)


def deidentify_to_zip(
    source: Path,
    out: IO[bytes] | zipfile.ZipFile,
    *,
    allow_burned_in: bool = False,
    pseudonyms: Pseudonyms | None = None,
    headers: HeaderSet | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidResult:
    """Write a de-identified copy of the DICOM files of ``source`` (a folder or a zip) into
    ``out`` (a writable binary stream, or an open ``ZipFile`` to add members to).

    Raises :class:`UsageError` (nothing written) for burned-in annotation without
    ``allow_burned_in`` or when there is no DICOM file, and :class:`IntegrityError` if a copy
    still carries an identifying attribute after de-identification (the zip is then incomplete:
    the caller must discard it).
    """
    source = Path(source)
    headers = headers or read_local(source)
    if not headers.dicom:
        raise UsageError(f"{display_name(str(source))} holds no DICOM file to de-identify")
    burned = burned_in_files(headers)
    if burned and not allow_burned_in:
        raise UsageError(
            f"{len(burned)} file(s) declare BurnedInAnnotation = YES (e.g. "
            f"{display_name(burned[0])}): text in the pixels cannot be removed by editing "
            "headers, so the copy would still identify the patient",
            hint="leave those files out, or override with --allow-burned-in if you have "
                 "checked the images")
    pseudo = pseudonyms or Pseudonyms()
    ordered = _order(headers)
    multi = len(ordered) > 1
    members: list[str] = []
    mappings: list[StudyMapping] = []
    total = sum(len(files) for series in ordered.values() for files in series.values())
    done = 0
    open_member, close = _opener(source)
    if isinstance(out, zipfile.ZipFile):
        zf, own_zip = out, False
    else:
        zf, own_zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True), True
    try:
        for s_index, (study_uid, series_map) in enumerate(ordered.items(), start=1):
            mapping: StudyMapping | None = None
            prefix = f"ST{s_index:02d}/" if multi else ""
            for se_index, files in enumerate(series_map.values(), start=1):
                for im_index, fh in enumerate(files, start=1):
                    try:
                        with open_member(fh) as fp:
                            ds = dcmread(fp)
                    except (OSError, zipfile.BadZipFile) as exc:
                        raise FerryError(f"cannot read {display_name(fh.relpath)}: {exc}") \
                            from None
                    original_date = str(ds.get("StudyDate", "") or "")
                    original_accession = str(ds.get("AccessionNumber", "") or "")
                    pid, pname = deidentify_dataset(ds, pseudo)
                    findings, _declared = check_dataset(ds)
                    findings.discard("burned-in")
                    if findings:
                        raise IntegrityError(
                            f"de-identification left {', '.join(sorted(findings))} in "
                            f"{display_name(fh.relpath)}; the zip is incomplete, discard it")
                    if mapping is None:
                        mapping = StudyMapping(
                            pseudo_study_uid=pseudo.uid(study_uid) if study_uid else "",
                            original_study_uid=study_uid,
                            pseudo_patient_id=str(ds.PatientID),
                            original_patient_id=pid,
                            original_patient_name=pname,
                            original_accession=original_accession,
                            original_study_date=original_date,
                        )
                        mappings.append(mapping)
                    mapping.instances += 1
                    buf = io.BytesIO()
                    ds.save_as(buf, enforce_file_format=True)
                    name = f"{prefix}SE{se_index:03d}/IM{im_index:05d}.dcm"
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o100644 << 16
                    zf.writestr(info, buf.getbuffer())
                    members.append(name)
                    done += 1
                    if progress is not None:
                        progress(done, total)
    finally:
        close()
        if own_zip:
            zf.close()
    left_out = [f"{display_name(f.relpath)}: {f.reason}" for f in headers.non_dicom]
    return DeidResult(members=members, mappings=mappings, left_out=left_out,
                      burned_in=len(burned))
