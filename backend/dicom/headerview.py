"""A DICOM header as rows (tag, name, VR, value) for the TUI viewer, patient data masked.

The viewer has the first bytes of a file (backend/remote.py ``VIEW_LIMIT``); :func:`parse_head`
reads the header from them when they hold all of it. :func:`header_rows` walks the dataset
(sequence items indented by ``depth``) and masks what identifies a person unless ``reveal``:
person names (initials), patient IDs and accession numbers (last 3 characters), and every other
value of the patient, address, history and staff rows of the Annex E table
(backend/dicom/profile.py), and private values. Values are plain text, at most
:data:`MAX_VALUE` characters; binary values show their length only.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from backend.dicom.profile import ATTRIBUTES
from backend.dicom.reader import header_steps
from backend.dicom.summary import mask_id, mask_name

MAX_VALUE = 120
_MAX_DEPTH = 8
_SENSITIVE_CATEGORIES = frozenset({
    "patient name", "patient ID", "birth date", "address", "accession number",
    "patient history", "patient characteristics", "physicians and staff", "exam identifiers",
})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
MASK = "•••"


def looks_like_dicom(data: bytes) -> bool:
    """The ``DICM`` prefix after the 128-byte preamble (DICOM PS3.10 §7.1)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def parse_head(data: bytes, total: int | None = None) -> Dataset | None:
    """The header from the first ``len(data)`` bytes of a ``total``-byte file, or None when
    it is not DICOM or its header goes on past ``data``."""
    total = len(data) if total is None else max(total, len(data))
    steps = header_steps(total, head=len(data) or 1)
    try:
        offset, length = next(steps)
        while True:
            if offset + length > len(data) and len(data) < total:
                return None
            offset, length = steps.send(data[offset : offset + length])
    except StopIteration as done:
        found: tuple[Dataset | None, str, int] = done.value  # StopIteration.value is Any
        return found[0]


@dataclass(frozen=True)
class HeaderRow:
    tag: str  # "(0010,0010)"
    name: str  # keyword, "(private)" or "(unknown)"
    vr: str
    value: str  # masked unless revealed
    depth: int = 0  # sequence nesting
    sensitive: bool = False  # masked when not revealed


def _value_text(elem: object) -> str:
    vr = str(getattr(elem, "VR", ""))
    value = getattr(elem, "value", None)
    if vr == "SQ":
        return f"<{len(value or [])} item(s)>"
    if vr in _BINARY_VRS or isinstance(value, bytes | bytearray):
        return f"<{len(value or b'')} bytes>"
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _masked(vr: str, keyword: str, text: str) -> str:
    if not text:
        return ""
    if vr == "PN":
        return mask_name(text) or MASK
    if keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber", "IssuerOfPatientID"):
        return mask_id(text) or MASK
    return MASK


def header_rows(ds: Dataset, *, reveal: bool = False, depth: int = 0) -> list[HeaderRow]:
    rows: list[HeaderRow] = []
    if depth == 0 and getattr(ds, "file_meta", None) is not None:
        rows += header_rows(ds.file_meta, reveal=reveal, depth=0)
    if depth > _MAX_DEPTH:
        return rows
    for key in list(ds.keys()):
        tag = int(key)
        try:
            elem = ds[tag]
        except Exception:
            rows.append(HeaderRow(f"({tag >> 16:04X},{tag & 0xFFFF:04X})", "(unreadable)", "?",
                                  "", depth))
            continue
        private = bool(tag >> 16 & 1)
        keyword = elem.keyword or ("(private)" if private else "(unknown)")
        if private and elem.name and elem.name != "Private tag data":
            keyword = f"(private) {elem.name}"
        vr = str(elem.VR)
        row = ATTRIBUTES.get(tag)
        sensitive = vr == "PN" or (private and vr != "SQ") or (
            row is not None and row.category in _SENSITIVE_CATEGORIES and vr != "SQ")
        text = _value_text(elem)
        shown = text if reveal or not sensitive else _masked(vr, elem.keyword, text)
        rows.append(HeaderRow(f"({tag >> 16:04X},{tag & 0xFFFF:04X})", keyword, vr, shown,
                              depth, sensitive))
        if vr == "SQ" and elem.value:
            for item in elem.value:
                rows += header_rows(item, reveal=reveal, depth=depth + 1)
    return rows
