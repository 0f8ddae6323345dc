"""Study summaries from headers only: a local folder, a zip, and a remote folder on OpenSSH,
with the bytes a remote inspect moves measured on the wire (a TCP proxy counting them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from backend import ssh
from backend.dicom import reader
from backend.dicom.summary import CaseSummary, mask_id, mask_name, summarise
from backend.dicom.synthetic import SeriesSpec, StudySpec, write_study
from tests import dicom_helpers as dh
from tests.proxies import Proxy

pytestmark = pytest.mark.usefixtures("ferry_home")


def _by_patient(summary: CaseSummary) -> dict[str, object]:
    return {s.patient_id: s for s in summary.studies}


def _assert_mixed(summary: CaseSummary, first, second) -> None:
    assert not summary.single_study
    assert sorted(s.study_uid for s in summary.studies) == sorted(
        [first.study_uid, second.study_uid])
    studies = _by_patient(summary)
    one = studies["********317"]
    assert one.patient_name == "J.D."
    assert one.study_date == "2026-11-03"
    assert one.description == "MRI BRAIN W/O CONTRAST"
    assert one.modalities == ["MR"]
    assert [(s.number, s.description, s.instances) for s in one.series] == [
        ("1", "T1 MPRAGE SAG", 3), ("2", "T2 FLAIR AX", 2), ("3", "DWI", 4)]
    assert one.instances == 9
    two = studies["********123"]
    assert (two.patient_name, two.modalities, two.instances) == ("R.R.", ["CT"], 2)
    assert [(s.number, s.description) for s in two.series] == [("7", "CT HEAD AXIAL")]
    assert [f.path for f in summary.non_dicom] == ["report.pdf"]
    assert summary.files == 12
    assert summary.total_size == sum(s.size for s in summary.studies) + 380


def test_masking_rules() -> None:
    assert mask_name("DOE^JANE^Q") == "J.D."
    assert mask_name("") == ""
    assert mask_id("PID-0042317") == "********317"
    assert mask_id("12345") == "*****", "a short ID is not shown at all"


def test_mixed_folder_lists_both_studies_series_and_the_non_dicom_report(tmp_path: Path) -> None:
    first, second = dh.mixed_folder(tmp_path / "mixed")
    summary = summarise(reader.read_local(tmp_path / "mixed"))
    _assert_mixed(summary, first, second)
    full = summarise(reader.read_local(tmp_path / "mixed"), full_names=True)
    assert {s.patient_name for s in full.studies} == {"DOE^JANE^Q", "ROE^RICHARD"}
    assert not full.masked
    text = str(summary.to_json())
    assert "DOE" not in text and "0042317" not in text and "ACC-778812" not in text


def test_zip_summary_matches_the_folder_and_reads_only_headers(tmp_path: Path) -> None:
    dh.mixed_folder(tmp_path / "mixed")
    big = StudySpec(patient_id="PID-9990001", series=(SeriesSpec(1, "BIG", 2),),
                    padding=600_000)
    write_study(tmp_path / "mixed", big, prefix="big-")
    archive = dh.zip_folder(tmp_path / "mixed", tmp_path / "mixed.zip")
    headers = reader.read_local(archive)
    summary = summarise(headers)
    assert len(summary.studies) == 3
    folder_summary = summarise(reader.read_local(tmp_path / "mixed"))
    assert [s.to_json() for s in summary.studies] == [s.to_json() for s in folder_summary.studies]
    big_files = [h for h in headers.files if h.relpath.startswith("big-")]
    assert all(h.size > 600_000 and h.bytes_read <= reader.HEAD for h in big_files)


def test_pydicom_sample_files_are_three_studies(tmp_path: Path) -> None:
    folder = dh.samples_folder(tmp_path / "samples")
    summary = summarise(reader.read_local(folder), full_names=True)
    assert sorted(m for s in summary.studies for m in s.modalities) == ["CT", "MR", "RTPLAN"]
    ct = next(s for s in summary.studies if s.modalities == ["CT"])
    assert ct.patient_name == "CompressedSamples^CT1"
    assert ct.study_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert summary.total_size == sum(
        os.path.getsize(get_testdata_file(n)) for n in dh.SAMPLES)


def test_symlinks_are_reported_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    dh.study(folder)
    outside = dh.samples_folder(tmp_path / "outside")
    (folder / "link.dcm").symlink_to(outside / "CT_small.dcm")
    summary = summarise(reader.read_local(folder))
    assert len(summary.studies) == 1
    assert any("link.dcm" in s for s in summary.skipped)


async def test_remote_folder_summary_reads_only_headers_over_the_wire(
    sshd, tmp_path: Path
) -> None:
    served = tmp_path / "served" / "case"
    dh.mixed_folder(served)
    padded = StudySpec(patient_id="PID-4440001", series=(SeriesSpec(1, "LARGE", 6),),
                       padding=1_000_000)
    write_study(served, padded, prefix="large-")
    sizes = sum(p.stat().st_size for p in served.rglob("*") if p.is_file())
    files = sum(1 for p in served.rglob("*") if p.is_file())
    with Proxy(sshd.port) as proxy:
        site = sshd.site("pacs", port=proxy.port)
        async with ssh.sftp_session(site) as (_conn, sftp):
            headers = await reader.read_remote(sftp, str(served), label="pacs:case")
        on_wire = proxy.transferred
    print(f"on the wire: {on_wire} bytes for {files} files of {sizes} bytes")
    summary = summarise(headers)
    assert len(summary.studies) == 3 and [f.path for f in summary.non_dicom] == ["report.pdf"]
    local = summarise(reader.read_local(served))
    assert [s.to_json() for s in summary.studies] == [s.to_json() for s in local.studies]
    assert sizes > 6_000_000
    # every byte both ways (handshake, listings, reads) against a bound: at most one first read
    # per file plus 100 KiB for the session; the 6 MB of pixel data never crossed
    assert on_wire < files * reader.HEAD + 100 * 1024, (on_wire, sizes)
    assert on_wire < sizes / 5
    assert headers.bytes_read <= on_wire


async def test_remote_reads_past_a_long_header_and_skips_a_large_private_value(
    sshd, tmp_path: Path
) -> None:
    from pydicom import dcmread

    served = tmp_path / "served"
    written = dh.study(served, StudySpec(series=(SeriesSpec(1, "S", 2),), padding=300_000))
    blob_file = written.files[0]
    ds = dcmread(blob_file)
    block = ds.private_block(0x0031, "VENDOR BLOB", create=True)
    block.add_new(0x01, "OB", os.urandom(200_000))  # longer than the reader's defer size
    ds.save_as(blob_file, enforce_file_format=True)
    async with ssh.sftp_session(sshd.site("pacs")) as (_conn, sftp):
        headers = await reader.read_remote(sftp, str(served), head=512)
    by_name = {h.relpath: h for h in headers.files}
    assert all(h.is_dicom for h in headers.files), [h.reason for h in headers.files]
    small = by_name["SE001/IM00002.dcm"]
    assert small.bytes_read > 512, "a header longer than the first read is read on"
    assert small.bytes_read < 8192
    blob = by_name["SE001/IM00001.dcm"]
    assert blob.bytes_read < 8192, "the 200 KB private value was skipped, not fetched"
    summary = summarise(headers)
    assert summary.studies[0].instances == 2


async def test_remote_summary_on_every_server_kind(matrix_server) -> None:
    s = matrix_server
    first, second = dh.mixed_folder(s.root / "case")
    async with ssh.sftp_session(s.site("m")) as (_conn, sftp):
        headers = await reader.read_remote(sftp, s.remote("case"))
    summary = summarise(headers)
    assert sorted(st.study_uid for st in summary.studies) == sorted(
        [first.study_uid, second.study_uid]), s.kind
    assert [f.path for f in summary.non_dicom] == ["report.pdf"]
    assert sum(st.instances for st in summary.studies) == 11
