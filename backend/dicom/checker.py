"""Checking headers against the Basic Application Level Confidentiality Profile.

For every DICOM file, which attributes that DICOM PS3.15 Annex E requires removing or replacing
(the table in :mod:`backend.dicom.profile`) are still present with a non-empty value, anywhere
in the dataset (sequences included, file meta too); every private attribute; every other person
name; overlay and curve data; ``BurnedInAnnotation`` = YES; ``PatientIdentityRemoved`` missing
or not YES. The report counts files per attribute and never contains a value.

What a header cannot show: whether a value was *replaced*. An attribute the Profile lets a
de-identifier replace (actions Z, D, U: the patient's name and ID may hold pseudonyms, UIDs new
UIDs) is a finding unless the file declares ``PatientIdentityRemoved`` = YES; in a file that
declares it, such values are counted under ``declared_replaced`` ("as the file says, not
verified"). Attributes the Profile removes (X), private attributes and burned-in annotation are
findings whatever the file declares. Non-DICOM files cannot be checked and are listed as
unchecked. The check is an aid for the operator, not a certification (docs/cases.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from backend.dicom.profile import (
    ATTRIBUTES,
    BURNED_IN,
    IDENTITY_REMOVED,
    is_overlay_or_curve,
)
from backend.dicom.reader import HeaderSet

_MAX_DEPTH = 16
_TEXT_VRS = frozenset(  # string VRs: padded with a space or NUL
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UR", "UT"))
_EXAMPLES = 3

# finding keys that are not one table row: (key, label, category, action)
PRIVATE = ("private", "private attributes (odd groups)", "private attributes", "X")
OTHER_NAMES = ("other-pn", "other person names (PN values not listed above)", "patient name",
               "Z")
OVERLAYS = ("overlay", "overlay and curve data (60xx,3000/4000), (50xx,xxxx)", "overlays", "X")
BURNED = ("burned-in", "BurnedInAnnotation = YES (text in the pixels)", "burned-in annotation",
          "-")
NOT_REMOVED = ("identity-not-removed", "PatientIdentityRemoved missing or not YES",
               "de-identification flag", "-")
_SPECIAL = {k[0]: k for k in (PRIVATE, OTHER_NAMES, OVERLAYS, BURNED, NOT_REMOVED)}


@dataclass(frozen=True)
class Element:
    """One element found while walking a dataset: enough to judge it, never its value."""

    tag: int
    vr: str
    empty: bool


def _vr_of(tag: int, raw: RawDataElement) -> str:
    if raw.VR:
        return str(raw.VR)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def elements(ds: Dataset, depth: int = 0) -> Iterator[Element]:
    """Every element of ``ds`` (and of its sequences' items), without loading deferred values."""
    if depth > _MAX_DEPTH:
        return
    for key in list(ds.keys()):
        tag = int(key)
        if tag & 0xFFFF == 0:  # group lengths
            continue
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement):
            vr = _vr_of(tag, raw)
            if vr != "SQ":  # judged on the raw bytes: converting every value costs 5x
                if raw.value is None:  # deferred (longer than the reader's defer size)
                    yield Element(tag, vr, empty=not raw.length)
                elif vr in _TEXT_VRS:
                    pad = b" \0^=" if vr == "PN" else b" \0"
                    yield Element(tag, vr, empty=not bytes(raw.value).strip(pad))
                else:
                    yield Element(tag, vr, empty=not raw.length)
                continue
        try:
            elem = ds[tag]
        except Exception:  # a value pydicom cannot convert is still a value
            yield Element(tag, "UN", empty=False)
            continue
        vr = str(elem.VR)
        empty = bool(elem.is_empty)
        if vr == "PN" and not empty:
            empty = all(not str(v).replace("^", "").replace("=", "").strip()
                        for v in (elem.value if elem.VM > 1 else [elem.value]))
        yield Element(tag, vr, empty)
        if vr == "SQ" and not empty:
            for item in elem.value:
                yield from elements(item, depth + 1)


def _text(ds: Dataset, tag: int) -> str:
    try:
        elem = ds.get(tag)
    except Exception:
        return ""
    return "" if elem is None or elem.value is None else str(elem.value).strip().upper()


def identity_removed(ds: Dataset) -> bool:
    return _text(ds, IDENTITY_REMOVED) == "YES"


def check_dataset(ds: Dataset) -> tuple[set[str], set[str]]:
    """(finding keys, declared-replaced keys) for one dataset; keys are ``(gggg,eeee)`` tags
    of table rows or the special keys above."""
    declared = identity_removed(ds)
    findings: set[str] = set()
    replaced: set[str] = set()
    walked = list(elements(ds.file_meta)) if hasattr(ds, "file_meta") else []
    walked += list(elements(ds))
    for el in walked:
        if el.tag == BURNED_IN:
            continue
        if el.tag >> 16 & 1:  # a private group: creators and values alike
            findings.add(PRIVATE[0])
            continue
        if el.empty:
            continue
        row = ATTRIBUTES.get(el.tag)
        if row is not None:
            key = row.tag_text
            if row.action == "X" or not declared:
                findings.add(key)
            else:
                replaced.add(key)
        elif is_overlay_or_curve(el.tag):
            findings.add(OVERLAYS[0])
        elif el.vr == "PN":
            (replaced if declared else findings).add(OTHER_NAMES[0])
    if _text(ds, BURNED_IN) == "YES":
        findings.add(BURNED[0])
    if not declared:
        findings.add(NOT_REMOVED[0])
    return findings, replaced


@dataclass
class AttributeCount:
    key: str  # "(0010,0010)" or a special key ("private", "burned-in", ...)
    name: str  # keyword or label
    category: str
    action: str  # the Profile's action: X, Z, D, U ("-" for the flags)
    files: int = 0
    examples: list[str] = field(default_factory=list)  # the first few files (paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "attribute": self.key,
            "name": self.name,
            "category": self.category,
            "action": self.action,
            "files": self.files,
            "examples": self.examples,
        }


def describe(key: str) -> AttributeCount:
    if key in _SPECIAL:
        _k, label, category, action = _SPECIAL[key]
        return AttributeCount(key, label, category, action)
    group, element = (int(x, 16) for x in key.strip("()").split(","))
    tag = group << 16 | element
    row = ATTRIBUTES.get(tag)
    if row is not None:
        return AttributeCount(key, row.keyword, row.category, row.action)
    return AttributeCount(key, keyword_for_tag(tag) or key, "other", "X")


@dataclass
class CheckReport:
    source: str
    files_checked: int
    files_with_findings: int
    findings: list[AttributeCount]
    declared_replaced: list[AttributeCount]
    unchecked: list[str]  # non-DICOM or unreadable files: no verdict possible
    per_file: dict[str, list[str]] = field(default_factory=dict)  # relpath -> finding keys

    @property
    def clean(self) -> bool:
        """Nothing found and nothing left unchecked."""
        return not self.findings and not self.unchecked

    def count(self, key: str) -> int:
        return next((f.files for f in self.findings if f.key == key), 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
            "clean": self.clean,
            "files_checked": self.files_checked,
            "files_with_findings": self.files_with_findings,
            "findings": [f.to_json() for f in self.findings],
            "declared_replaced": [f.to_json() for f in self.declared_replaced],
            "unchecked": self.unchecked,
            "note": "an aid for the operator, not a certification: replaced values and pixel "
                    "data cannot be verified from headers",
        }


def _sort_key(item: AttributeCount) -> tuple[str, str]:
    return (item.category, item.key)


def check(headers: HeaderSet) -> CheckReport:
    """Check every DICOM file of ``headers``; non-DICOM files are listed as unchecked."""
    findings: dict[str, AttributeCount] = {}
    replaced: dict[str, AttributeCount] = {}
    per_file: dict[str, list[str]] = {}
    for fh in headers.dicom:
        assert fh.dataset is not None
        found, declared = check_dataset(fh.dataset)
        for keys, into in ((found, findings), (declared, replaced)):
            for key in keys:
                entry = into.get(key)
                if entry is None:
                    entry = into[key] = describe(key)
                entry.files += 1
                if len(entry.examples) < _EXAMPLES:
                    entry.examples.append(fh.relpath)
        if found:
            per_file[fh.relpath] = sorted(found)
    return CheckReport(
        source=headers.source,
        files_checked=len(headers.dicom),
        files_with_findings=len(per_file),
        findings=sorted(findings.values(), key=_sort_key),
        declared_replaced=sorted(replaced.values(), key=_sort_key),
        unchecked=[f"{f.relpath}: {f.reason}" for f in headers.non_dicom],
        per_file=per_file,
    )
