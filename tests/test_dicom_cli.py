"""``ferry case inspect`` as scripts use it: the real console script, local and on OpenSSH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backend.sites.store import SiteStore
from tests import dicom_helpers as dh

FERRY = Path(sys.executable).parent / "ferry"


def ferry(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "1"}
    return subprocess.run([str(FERRY), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_inspect_json_lists_studies_masked_and_the_check(ferry_home: Path, tmp_path: Path) -> None:
    first, second = dh.mixed_folder(tmp_path / "mixed")
    run = ferry("case", "inspect", str(tmp_path / "mixed"), "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["masked"] is True and data["single_study"] is False
    studies = {s["study_uid"]: s for s in data["studies"]}
    assert set(studies) == {first.study_uid, second.study_uid}
    one = studies[first.study_uid]
    assert (one["patient_name"], one["patient_id"]) == ("J.D.", "********317")
    assert [(s["number"], s["instances"]) for s in one["series"]] == [("1", 3), ("2", 2),
                                                                      ("3", 4)]
    assert [f["path"] for f in data["non_dicom"]] == ["report.pdf"]
    found = {f["attribute"]: f["files"] for f in data["check"]["findings"]}
    assert found["(0010,0010)"] == 11 and found["private"] == 11
    assert data["check"]["clean"] is False
    assert "DOE" not in run.stdout and "PID-0042317" not in run.stdout
    text = ferry("case", "inspect", str(tmp_path / "mixed"))
    assert "2 studies in one case" in text.stderr and "not DICOM: report.pdf" in text.stdout

    full = ferry("case", "inspect", str(tmp_path / "mixed"), "--json", "--full-names")
    names = {s["patient_name"] for s in json.loads(full.stdout)["studies"]}
    assert names == {"DOE^JANE^Q", "ROE^RICHARD"}


def test_inspect_text_of_one_study_and_errors(ferry_home: Path, tmp_path: Path) -> None:
    dh.study(tmp_path / "case")
    run = ferry("case", "inspect", str(tmp_path / "case"))
    assert run.returncode == 0, run.stderr
    assert "1 study" in run.stdout and "T1 MPRAGE SAG" in run.stdout
    assert "patient J.D. (********317)" in run.stdout
    assert "identifying data (DICOM PS3.15 Annex E Basic Profile)" in run.stdout

    missing = ferry("case", "inspect", str(tmp_path / "nope"))
    assert missing.returncode == 9
    assert missing.stderr.strip().startswith("ferry: error: no such folder")
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    unknown = ferry("case", "inspect", "nosite:case")
    assert unknown.returncode == 3 and "no site named nosite" in unknown.stderr


def test_inspect_remote_site_path(sshd, ferry_home: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    written = dh.study(served / "incoming" / "case-7")
    SiteStore().add(sshd.site("pacs", remote_dir=str(served)))
    run = ferry("case", "inspect", "pacs:incoming/case-7", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["source"] == f"pacs:{served}/incoming/case-7"
    assert [s["study_uid"] for s in data["studies"]] == [written.study_uid]
    assert data["studies"][0]["instances"] == 9
    assert 0 < data["bytes_read"] <= data["total_size"]
    missing = ferry("case", "inspect", "pacs:incoming/none")
    assert missing.returncode == 9, missing.stderr
