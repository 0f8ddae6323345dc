"""What a case holds, study by study: the summary behind ``ferry case inspect`` and the TUI.

From the headers of :mod:`backend.dicom.reader`: one :class:`StudySummary` per
StudyInstanceUID (patient masked unless ``full_names``, modalities, study date, description,
series with number, description and instance count, files and bytes), DICOM files that name no
study, and the non-DICOM files. Plain dataclasses; ``to_json()`` gives what ``--json`` prints.
Patient masking: initials of the given and family names, and only the last 3 characters of the
ID (IDs shorter than 6 characters are masked completely), so a screen or a terminal log shows
enough to tell two studies apart and not enough to name the patient.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from backend.dicom.reader import FileHeader, HeaderSet

_SHOWN_ID_CHARS = 3
_MIN_ID_TO_SHOW = 6


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed value in one attribute must not sink the summary
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def mask_name(name: str) -> str:
    """``DOE^JANE^Q`` -> ``J.D.``; empty stays empty."""
    parts = [p.strip() for p in name.split("=")[0].split("^")]
    family = parts[0] if parts else ""
    given = parts[1] if len(parts) > 1 else ""
    initials = [w[0].upper() + "." for w in (given, family) if w]
    if not initials and name.strip():
        return "*"
    return "".join(initials)


def mask_id(value: str) -> str:
    """``PID-0042317`` -> ``********317``; short IDs are masked completely."""
    value = value.strip()
    if not value:
        return ""
    if len(value) < _MIN_ID_TO_SHOW:
        return "*" * len(value)
    return "*" * (len(value) - _SHOWN_ID_CHARS) + value[-_SHOWN_ID_CHARS:]


def format_date(value: str) -> str:
    """DICOM ``DA`` (YYYYMMDD) -> ISO ``YYYY-MM-DD``; anything else is returned as it is."""
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


@dataclass
class SeriesSummary:
    series_uid: str
    number: str
    description: str
    modality: str
    instances: int = 0
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "number": self.number,
            "description": self.description,
            "modality": self.modality,
            "instances": self.instances,
            "size": self.size,
        }


@dataclass
class StudySummary:
    study_uid: str
    patient_name: str  # masked unless the summary was made with full_names
    patient_id: str  # masked likewise
    study_date: str
    description: str
    accession: str  # masked likewise (it identifies the exam at the hospital)
    modalities: list[str] = field(default_factory=list)
    series: list[SeriesSummary] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    size: int = 0
    burned_in: int = 0  # instances that declare BurnedInAnnotation = YES
    identity_removed: bool = False  # every instance declares PatientIdentityRemoved = YES

    @property
    def instances(self) -> int:
        return len(self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "description": self.description,
            "accession": self.accession,
            "modalities": self.modalities,
            "instances": self.instances,
            "size": self.size,
            "burned_in_instances": self.burned_in,
            "identity_removed": self.identity_removed,
            "series": [s.to_json() for s in self.series],
            "files": self.files,
        }


@dataclass
class OtherFile:
    path: str
    size: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "reason": self.reason}


@dataclass
class CaseSummary:
    source: str
    studies: list[StudySummary]
    no_study: list[OtherFile]  # DICOM files without a StudyInstanceUID
    non_dicom: list[OtherFile]
    skipped: list[str]  # not read at all: symlinks, special files, hostile names
    total_size: int
    files: int
    masked: bool
    bytes_read: int = 0  # remote/zip: bytes fetched for the headers

    @property
    def single_study(self) -> bool:
        """One study and nothing else: what a provider that wants one study per zip needs."""
        return len(self.studies) == 1 and not self.no_study and not self.non_dicom

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "masked": self.masked,
            "files": self.files,
            "total_size": self.total_size,
            "bytes_read": self.bytes_read,
            "single_study": self.single_study,
            "studies": [s.to_json() for s in self.studies],
            "no_study": [f.to_json() for f in self.no_study],
            "non_dicom": [f.to_json() for f in self.non_dicom],
            "skipped": self.skipped,
        }


def _series_key(ds: Dataset) -> str:
    return _text(ds, "SeriesInstanceUID") or f"(no SeriesInstanceUID, #{_text(ds, 'SeriesNumber')})"


def _number_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def summarise(headers: HeaderSet, *, full_names: bool = False) -> CaseSummary:
    """Group ``headers`` into studies and series."""
    by_study: dict[str, list[FileHeader]] = defaultdict(list)
    no_study: list[OtherFile] = []
    for fh in headers.dicom:
        assert fh.dataset is not None
        uid = _text(fh.dataset, "StudyInstanceUID")
        if uid:
            by_study[uid].append(fh)
        else:
            no_study.append(OtherFile(fh.relpath, fh.size, "DICOM without StudyInstanceUID"))
    studies = [_study(uid, files, full_names) for uid, files in by_study.items()]
    studies.sort(key=lambda s: (s.study_date, s.study_uid))
    return CaseSummary(
        source=headers.source,
        studies=studies,
        no_study=no_study,
        non_dicom=[OtherFile(f.relpath, f.size, f.reason) for f in headers.non_dicom],
        skipped=list(headers.skipped),
        total_size=headers.total_size,
        files=len(headers.files),
        masked=not full_names,
        bytes_read=headers.bytes_read,
    )


def _study(uid: str, files: list[FileHeader], full_names: bool) -> StudySummary:
    first = files[0].dataset
    assert first is not None
    name = _text(first, "PatientName")
    pid = _text(first, "PatientID")
    accession = _text(first, "AccessionNumber")
    study = StudySummary(
        study_uid=uid,
        patient_name=name if full_names else mask_name(name),
        patient_id=pid if full_names else mask_id(pid),
        study_date=format_date(_text(first, "StudyDate")),
        description=_text(first, "StudyDescription"),
        accession=accession if full_names else mask_id(accession),
    )
    series: dict[str, SeriesSummary] = {}
    modalities: set[str] = set()
    removed = True
    for fh in files:
        ds = fh.dataset
        assert ds is not None
        key = _series_key(ds)
        entry = series.get(key)
        if entry is None:
            entry = series[key] = SeriesSummary(
                series_uid=_text(ds, "SeriesInstanceUID"),
                number=_text(ds, "SeriesNumber"),
                description=_text(ds, "SeriesDescription"),
                modality=_text(ds, "Modality"),
            )
        entry.instances += 1
        entry.size += fh.size
        if entry.modality:
            modalities.add(entry.modality)
        study.files.append(fh.relpath)
        study.size += fh.size
        if _text(ds, "BurnedInAnnotation").upper() == "YES":
            study.burned_in += 1
        if _text(ds, "PatientIdentityRemoved").upper() != "YES":
            removed = False
    study.identity_removed = removed
    study.modalities = sorted(modalities)
    study.series = sorted(series.values(), key=lambda s: (_number_key(s.number), s.series_uid))
    return study
