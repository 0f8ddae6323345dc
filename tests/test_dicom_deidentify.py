"""De-identification into a zip: none of the planted values survive, every copy parses as DICOM
and keeps its series/instance structure and references, burned-in pixels are refused unless
overridden, and the vault-encrypted mapping links a pseudonymised study back to the original."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from backend.dicom import checker, reader
from backend.dicom.deidentify import deidentify_to_zip
from backend.dicom.mapping import MappingStore
from backend.dicom.summary import summarise
from backend.dicom.synthetic import SeriesSpec, StudySpec
from backend.errors import UsageError
from backend.vault import Vault
from tests import dicom_helpers as dh


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_deidentified_zip_holds_no_planted_value_and_keeps_the_structure(tmp_path: Path) -> None:
    first, second = dh.mixed_folder(tmp_path / "mixed")
    out = io.BytesIO()
    result = deidentify_to_zip(tmp_path / "mixed", out)
    members = _members(out.getvalue())
    assert list(members) == result.members and len(members) == 11
    assert result.left_out == ["report.pdf: not DICOM (no DICM prefix after the 128-byte "
                               "preamble)"]
    blob = b"".join(members.values())
    for value in (*dh.PLANTED_VALUES, first.study_uid.encode(), second.study_uid.encode(),
                  *(uid.encode() for uid in first.sop_uids), b"ROE^RICHARD", b"PID-5550123"):
        assert value not in blob, f"{value!r} survived de-identification"

    # the zip passes the check it was made to pass, read back from disk as a receiver would
    archive = tmp_path / "deid.zip"
    archive.write_bytes(out.getvalue())
    headers = reader.read_local(archive)
    report = checker.check(headers)
    assert report.clean, [f.to_json() for f in report.findings]
    summary = summarise(headers, full_names=True)
    shape = sorted(sorted(s.instances for s in st.series) for st in summary.studies)
    assert shape == [[2], [2, 3, 4]], "series and instance counts are kept"
    assert {st.patient_id for st in summary.studies} == {m.pseudo_patient_id
                                                         for m in result.mappings}

    # full parse of every copy (pixels included): valid DICOM, references remapped consistently
    datasets = {name: dcmread(io.BytesIO(data)) for name, data in members.items()}
    sops = {ds.SOPInstanceUID for ds in datasets.values()}
    assert len(sops) == 11
    for ds in datasets.values():
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert len(ds.PixelData) == 16 * 16 * 2
        if "ReferencedImageSequence" in ds:
            assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in sops
    by_series: dict[str, set[str]] = {}
    for ds in datasets.values():
        by_series.setdefault(ds.SeriesInstanceUID, set()).add(ds.StudyInstanceUID)
    assert len(by_series) == 4 and all(len(v) == 1 for v in by_series.values())
    original_order = [dcmread(p).InstanceNumber for p in sorted(first.files)]
    assert original_order[:3] == [1, 2, 3]


def test_burned_in_annotation_is_refused_unless_overridden(tmp_path: Path) -> None:
    dh.study(tmp_path / "sc", StudySpec(series=(SeriesSpec(1, "SCREEN", 2, "OT"),),
                                        burned_in=True))
    out = io.BytesIO()
    with pytest.raises(UsageError) as refused:
        deidentify_to_zip(tmp_path / "sc", out)
    assert "BurnedInAnnotation" in refused.value.message
    assert "cannot be removed by editing headers" in refused.value.message
    assert out.getvalue() == b"", "nothing is written when refused"
    result = deidentify_to_zip(tmp_path / "sc", out, allow_burned_in=True)
    assert result.burned_in == 2
    report = checker.check(reader.read_local(_write(tmp_path / "sc.zip", out)))
    assert [f.key for f in report.findings] == ["burned-in"], "the copy still says so"


def _write(path: Path, buf: io.BytesIO) -> Path:
    path.write_bytes(buf.getvalue())
    return path


def test_pydicom_samples_deidentify_and_parse(tmp_path: Path) -> None:
    folder = dh.samples_folder(tmp_path / "samples")
    out = io.BytesIO()
    result = deidentify_to_zip(folder, out)
    assert len(result.mappings) == 3
    members = _members(out.getvalue())
    blob = b"".join(members.values())
    assert b"CompressedSamples" not in blob
    for data in members.values():
        ds = dcmread(io.BytesIO(data))
        assert ds.PatientIdentityRemoved == "YES"
    report = checker.check(reader.read_local(_write(tmp_path / "s.zip", out)))
    assert report.clean, [f.to_json() for f in report.findings]


def test_a_zip_source_is_deidentified_without_extracting(tmp_path: Path) -> None:
    dh.study(tmp_path / "case")
    archive = dh.zip_folder(tmp_path / "case", tmp_path / "case.zip")
    out = io.BytesIO()
    result = deidentify_to_zip(archive, out)
    assert len(result.members) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "case.zip"]


def test_mapping_in_the_vault_links_the_pseudonymised_study_to_the_original(
    ferry_home: Path, tmp_path: Path
) -> None:
    written = dh.study(tmp_path / "case")
    out = io.BytesIO()
    result = deidentify_to_zip(tmp_path / "case", out)
    vault_path = ferry_home / "vault.bin"
    store = MappingStore(Vault.create(vault_path, "correct horse battery"))
    for mapping in result.mappings:
        store.add(mapping, case_id="case-0001", site="ai")
    store.save()

    # what a provider returns is keyed by the case id or by what is in the copy it received
    received = dcmread(io.BytesIO(next(iter(_members(out.getvalue()).values()))))
    reopened = MappingStore(Vault.open(vault_path, "correct horse battery"))
    for key in ("case-0001", received.StudyInstanceUID, received.PatientID):
        (found,) = reopened.find(key)
        assert found.original_study_uid == written.study_uid
        assert found.original_patient_id == "PID-0042317"
        assert found.original_patient_name == "DOE^JANE^Q"
        assert found.instances == 9 and found.site == "ai"
    raw = vault_path.read_bytes()
    assert b"PID-0042317" not in raw and b"DOE" not in raw, "the mapping is stored encrypted"
    assert (vault_path.stat().st_mode & 0o777) == 0o600
