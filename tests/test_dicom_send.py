"""``ferry case send`` of real DICOM (pydicom-written studies) to OpenSSH: study isolation,
``--split``, a site's ``--require-deidentified`` rule, ``--deidentify`` with its vault mapping,
``--allow-identifiable --reason`` (audited), and results re-linked to the original patient."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from backend import paths
from backend.dicom.checker import check_dataset
from backend.dicom.mapping import MappingStore
from backend.dicom.synthetic import StudySpec
from backend.sites.store import SiteStore
from backend.vault import Vault
from tests import dicom_helpers as dh

FERRY = Path(sys.executable).parent / "ferry"
PASSPHRASE = "correct horse battery staple"


def ferry(*args: str, vault: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "1"}
    if not vault:
        env.pop("FERRY_VAULT_PASSPHRASE_FILE", None)
    return subprocess.run([str(FERRY), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def served(sshd, tmp_path: Path, ferry_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study-io site "ai" on OpenSSH; the vault passphrase in a 0600 file."""
    base = tmp_path / "served"
    (base / "ai" / "input").mkdir(parents=True)
    (base / "ai" / "output").mkdir()
    SiteStore().add(sshd.site("ai", layout="study-io", remote_dir=str(base / "ai")))
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("FERRY_VAULT_PASSPHRASE_FILE", str(secret))
    return base / "ai"


def uploaded(root: Path, study_id: str) -> dict[str, bytes]:
    path = root / "input" / study_id / "input" / f"{study_id}.zip"
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def stderr_lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    return run.stderr.strip().splitlines()


def test_a_mixed_folder_is_refused_with_the_list_of_what_it_holds(
    served: Path, tmp_path: Path
) -> None:
    first, second = dh.mixed_folder(tmp_path / "mixed")
    run = ferry("case", "send", "ai", str(tmp_path / "mixed"))
    assert run.returncode == 17, run.stderr
    lines = stderr_lines(run)
    assert lines[0].startswith("ferry: error: ") and "holds 2 studies, 1 non-DICOM file" in lines[0]
    assert "nothing was sent" in lines[0] and "--split" in lines[0]
    listed = "\n".join(lines[1:])
    assert f"study {first.study_uid}: J.D. (********317)" in listed
    assert f"study {second.study_uid}: R.R. (********123)" in listed
    assert "not DICOM: report.pdf" in listed
    assert "DOE" not in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == "" and not any((served / "input").iterdir()), "nothing uploaded"
    assert json.loads(ferry("case", "list", "ai", "--json").stdout)["cases"] == []

    # one study plus a report: refused too, unless the report is meant to travel with it
    one = tmp_path / "one"
    dh.study(one)
    (one / "report.pdf").write_bytes(b"%PDF-1.4 report\n")
    refused = ferry("case", "send", "ai", str(one))
    assert refused.returncode == 17 and "--allow-non-dicom" in refused.stderr
    sent = ferry("case", "send", "ai", str(one), "--allow-non-dicom")
    assert sent.returncode == 0, sent.stderr
    members = uploaded(served, sent.stdout.strip())
    assert "report.pdf" in members and len(members) == 10


def test_split_sends_one_zip_per_study_with_exactly_its_files(
    served: Path, tmp_path: Path
) -> None:
    first, second = dh.mixed_folder(tmp_path / "mixed")
    run = ferry("case", "send", "ai", str(tmp_path / "mixed"), "--split")
    assert run.returncode == 0, run.stderr
    ids = run.stdout.split()
    assert len(ids) == 2 and len(set(ids)) == 2
    assert "report.pdf: not DICOM, belongs to no study (not sent)" in run.stderr
    expected = {
        first.study_uid: {p.relative_to(tmp_path / "mixed").as_posix() for p in first.files},
        second.study_uid: {p.relative_to(tmp_path / "mixed").as_posix() for p in second.files},
    }
    seen = {}
    for study_id in ids:
        members = uploaded(served, study_id)
        uids = {str(dcmread(io.BytesIO(data)).StudyInstanceUID) for data in members.values()}
        assert len(uids) == 1, f"{study_id} holds {uids}"
        uid = uids.pop()
        assert set(members) == expected[uid], "exactly that study's files"
        seen[uid] = study_id
    assert set(seen) == {first.study_uid, second.study_uid}
    cases = {c["case_id"]: c for c in json.loads(ferry("case", "list", "ai", "--json").stdout)
             ["cases"]}
    assert set(cases) == set(ids) and all(c["state"] == "processing" for c in cases.values())
    assert ferry("case", "send", "ai", str(tmp_path / "mixed"), "--split",
                 "--study-id", "x").returncode == 2


def test_a_site_that_requires_deidentified_data_refuses_naming_the_attributes(
    served: Path, tmp_path: Path
) -> None:
    assert ferry("sites", "edit", "ai", "--require-deidentified").returncode == 0
    assert SiteStore().get("ai").require_deidentified is True
    dh.study(tmp_path / "case")
    run = ferry("case", "send", "ai", str(tmp_path / "case"))
    assert run.returncode == 17, run.stderr
    lines = stderr_lines(run)
    assert "site ai requires de-identified studies" in lines[0]
    assert "in 9 of 9 DICOM files" in lines[0] and "--deidentify" in lines[0]
    listed = "\n".join(lines[1:])
    for line in ("PatientName (0010,0010): 9 files", "PatientBirthDate (0010,0030): 9 files",
                 "AccessionNumber (0008,0050): 9 files", "InstitutionName (0008,0080): 9 files",
                 "private attributes (odd groups): 9 files",
                 "PatientIdentityRemoved missing or not YES: 9 files"):
        assert line in listed
    for value in dh.PLANTED_VALUES:
        assert value.decode() not in run.stderr, "a refusal never shows a value"
    assert not any((served / "input").iterdir())


def test_deidentify_sends_a_zip_with_none_of_them_that_parses_and_keeps_its_series(
    served: Path, tmp_path: Path
) -> None:
    assert ferry("sites", "edit", "ai", "--require-deidentified").returncode == 0
    written = dh.study(tmp_path / "case")
    (tmp_path / "case" / "notes.txt").write_text("DOE JANE notes\n")
    refused = ferry("case", "send", "ai", str(tmp_path / "case"), "--deidentify")
    assert refused.returncode == 17 and "--allow-non-dicom" in refused.stderr
    run = ferry("case", "send", "ai", str(tmp_path / "case"), "--deidentify",
                "--allow-non-dicom")
    assert run.returncode == 0, run.stderr
    study_id = run.stdout.strip()
    assert "notes.txt: not DICOM, not in the de-identified copy" in run.stderr
    members = uploaded(served, study_id)
    assert sorted(members) == [f"SE00{s}/IM0000{i}.dcm" for s, n in ((1, 3), (2, 2), (3, 4))
                               for i in range(1, n + 1)]
    series: dict[str, int] = {}
    sops = set()
    refs = set()
    for data in members.values():
        for value in dh.PLANTED_VALUES:
            assert value not in data
        for uid in [written.study_uid, *written.sop_uids, *written.series_uids.values()]:
            assert uid.encode() not in data
        ds = dcmread(io.BytesIO(data))
        assert ds.PatientIdentityRemoved == "YES" and len(ds.PixelData) == 16 * 16 * 2
        findings, _ = check_dataset(ds)
        assert findings == set()
        series[str(ds.SeriesInstanceUID)] = series.get(str(ds.SeriesInstanceUID), 0) + 1
        sops.add(str(ds.SOPInstanceUID))
        if "ReferencedImageSequence" in ds:
            refs.add(str(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID))
    assert sorted(series.values()) == [2, 3, 4] and refs and refs <= sops
    assert not list((Path(os.environ["FERRY_HOME"]) / "state" / "outgoing").glob("*.zip"))
    vault = Vault.open(paths.vault_file(), PASSPHRASE)
    [mapping] = MappingStore(vault).for_case("ai", study_id)
    assert (mapping.original_patient_id, mapping.original_study_uid) == (
        "PID-0042317", written.study_uid)
    assert mapping.instances == 9


def test_burned_in_annotation_is_refused_unless_overridden(served: Path, tmp_path: Path) -> None:
    dh.study(tmp_path / "us", StudySpec(burned_in=True))
    run = ferry("case", "send", "ai", str(tmp_path / "us"), "--deidentify")
    assert run.returncode == 17 and "BurnedInAnnotation = YES" in run.stderr
    assert "cannot be removed by editing headers" in run.stderr
    assert not any((served / "input").iterdir())
    ok = ferry("case", "send", "ai", str(tmp_path / "us"), "--deidentify", "--allow-burned-in")
    assert ok.returncode == 0, ok.stderr


def test_allow_identifiable_with_a_reason_sends_and_audits_the_reason(
    served: Path, tmp_path: Path
) -> None:
    assert ferry("sites", "edit", "ai", "--require-deidentified").returncode == 0
    dh.study(tmp_path / "case")
    bare = ferry("case", "send", "ai", str(tmp_path / "case"), "--allow-identifiable")
    assert bare.returncode == 2 and "--reason" in bare.stderr
    reason = "IRB-2026-114: identified second opinion under DPA"
    run = ferry("case", "send", "ai", str(tmp_path / "case"), "--allow-identifiable",
                "--reason", reason)
    assert run.returncode == 0, run.stderr
    study_id = run.stdout.strip()
    assert "under an override" in run.stderr
    assert len(uploaded(served, study_id)) == 9
    audit = ferry("audit", "list", "--event", "case.identifiable_override", "--json")
    assert audit.returncode == 0, audit.stderr
    [event] = json.loads(audit.stdout)
    fields = event["fields"]
    assert fields["reason"] == reason and fields["studies"] == [study_id]
    assert fields["findings"]["PatientName"] == 9 and fields["site"] == "ai"
    assert "DOE" not in audit.stdout


def test_the_mapping_relinks_a_returned_result_to_the_original_patient(
    served: Path, tmp_path: Path
) -> None:
    dh.study(tmp_path / "case")
    run = ferry("case", "send", "ai", str(tmp_path / "case"), "--deidentify")
    assert run.returncode == 0, run.stderr
    study_id = run.stdout.strip()
    out = served / "output" / f"{study_id}_out"
    out.mkdir()
    (out / "prediction.txt").write_text(f"study {study_id}\nresult: NORMAL\n")
    into = tmp_path / "results"
    for _ in range(2):  # stable across two polls
        polled = ferry("case", "watch", "ai", "--once", "--into", str(into))
        assert polled.returncode == 0, polled.stderr
    assert f"results downloaded: {study_id}" in polled.stdout
    listing = ferry("case", "list", "ai", "--json")
    assert listing.returncode == 0, listing.stderr
    [case] = json.loads(listing.stdout)["cases"]
    assert case["state"] == "downloaded"
    assert case["patient"]["name"] == "J.D." and case["patient"]["id"] == "********317"
    assert case["patient"]["masked"] is True and "DOE" not in listing.stdout
    text = ferry("case", "list", "ai")
    assert "J.D. (********317)" in text.stdout
    full = json.loads(ferry("case", "list", "ai", "--json", "--full-names").stdout)
    assert full["cases"][0]["patient"]["name"] == "DOE^JANE^Q"
    assert full["cases"][0]["patient"]["study_uid"]
    locked = ferry("case", "list", "ai", "--json", vault=False)
    assert locked.returncode == 0 and json.loads(locked.stdout)["cases"][0]["patient"] is None
    assert "vault" in locked.stderr


def test_the_demo_local_studies_show_every_check(tmp_path: Path) -> None:
    from backend.demo.samples import populate_local
    from backend.dicom import checker, reader
    from backend.dicom.summary import summarise

    populate_local(tmp_path)
    clean = reader.read_local(tmp_path / "study-to-send")
    assert summarise(clean).single_study and checker.check(clean).clean
    ident = reader.read_local(tmp_path / "identifiable-study")
    report = checker.check(ident)
    assert summarise(ident).single_study and report.count("(0010,0010)") == 6
    mixed = summarise(reader.read_local(tmp_path / "mixed-studies"))
    assert len(mixed.studies) == 2 and [f.path for f in mixed.non_dicom] == ["referral.pdf"]
