"""The PS3.15 Annex E Basic Profile check finds every identifying attribute planted in a study,
counts files per attribute, flags burned-in annotation, and never puts a value in its report."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom import dcmread

from backend.dicom import checker, reader
from backend.dicom.profile import ATTRIBUTES
from backend.dicom.synthetic import SeriesSpec, StudySpec
from tests import dicom_helpers as dh


def test_every_planted_attribute_is_found_with_its_file_count(tmp_path: Path) -> None:
    dh.study(tmp_path / "case")
    report = checker.check(reader.read_local(tmp_path / "case"))
    found = {f.key: f for f in report.findings}
    missing = {k: v for k, v in dh.PLANTED_FINDINGS.items() if k not in found}
    assert not missing, missing
    for key, name in dh.PLANTED_FINDINGS.items():
        assert found[key].name == name
        expected = 9 if key != "(0008,1155)" else 6  # the first instance of a series refers to none
        assert found[key].files == expected, (key, found[key].files)
    assert report.files_checked == 9 and report.files_with_findings == 9
    assert not report.clean
    text = json.dumps(report.to_json())
    for value in dh.PLANTED_VALUES:
        assert value.decode() not in text, f"the report must not carry {value!r}"


def test_burned_in_flag_and_a_declared_removal(tmp_path: Path) -> None:
    dh.study(tmp_path / "burned", StudySpec(series=(SeriesSpec(1, "SC", 2, "OT"),),
                                            burned_in=True, private=False))
    report = checker.check(reader.read_local(tmp_path / "burned"))
    assert report.count("burned-in") == 2
    assert report.count("private") == 0

    # a file that says its identity was removed, but still has its name, IDs and UIDs: names
    # and UIDs may be pseudonyms (the Profile allows replacement), so they are "declared
    # replaced"; what must be removed (address, institution...) is still a finding
    path = next((tmp_path / "burned").rglob("*.dcm"))
    ds = dcmread(path)
    ds.PatientIdentityRemoved = "YES"
    ds.save_as(path, enforce_file_format=True)
    report = checker.check(reader.read_local(tmp_path / "burned"))
    replaced = {f.key: f.files for f in report.declared_replaced}
    assert replaced["(0010,0010)"] == 1 and replaced["(0020,000D)"] == 1
    found = {f.key: f.files for f in report.findings}
    assert found["(0010,0010)"] == 1, "the other file does not declare removal"
    assert found["(0010,1040)"] == 2 and found["(0008,0080)"] == 2
    assert found["identity-not-removed"] == 1


def test_pydicom_samples_and_non_dicom_files_are_reported(tmp_path: Path) -> None:
    folder = dh.samples_folder(tmp_path / "samples")
    (folder / "notes.txt").write_text("patient called back")
    report = checker.check(reader.read_local(folder))
    found = {f.key: f.files for f in report.findings}
    assert found["(0010,0010)"] == 3 and found["(0010,0020)"] == 3
    assert found["(0008,0080)"] == 3
    assert found["identity-not-removed"] == 3
    assert report.unchecked == ["notes.txt: not DICOM (no DICM prefix after the 128-byte "
                                "preamble)"]
    assert not report.clean


def test_the_table_is_the_profile_s_actions() -> None:
    assert ATTRIBUTES[0x00100010].action == "Z"  # PatientName
    assert ATTRIBUTES[0x0020000D].action == "U"  # StudyInstanceUID
    assert ATTRIBUTES[0x00080080].action == "X"  # InstitutionName
    assert {a.action for a in ATTRIBUTES.values()} == {"X", "Z", "D", "U"}
