"""``ferry case send`` through the agent (docs/agent.md): the study's upload is an agent job,
so a killed ``case send`` still ends with the study on the server under its final name and
the case recorded as sent (the upload's finisher runs in the agent).

Real OpenSSH on 127.0.0.1 behind a rate-limited proxy (tests/proxies.py), so a 40 MiB study
is still uploading when the client is killed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from backend.sites.store import SiteStore
from tests.agent_helpers import (
    agent_home,  # noqa: F401 (fixture)
    ferry,
    job_moving,
    popen,
    wait_for,
)
from tests.proxies import Proxy

MIB = 1 << 20
RATE = 10 * MIB


@pytest.fixture
def ai_site(sshd, tmp_path: Path, agent_home: Path):  # noqa: F811
    base = tmp_path / "served" / "ai"
    (base / "input").mkdir(parents=True)
    (base / "output").mkdir()
    with Proxy(sshd.port, rate=RATE) as proxy:
        SiteStore().add(sshd.site("ai", port=proxy.port, layout="study-io",
                                  remote_dir=str(base), max_parallel=1))
        yield base


def _study(tmp_path: Path, size: int) -> Path:
    study = tmp_path / "study" / "series"
    study.mkdir(parents=True)
    (study / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(size))
    return study.parent


def _case_state(study_id: str) -> str | None:
    """The case's state as Ferry recorded it (``ferry case show``'s "state")."""
    from backend.cases.store import CaseStore

    record = CaseStore().get("ai", study_id)
    return record.state if record is not None else None


def test_case_send_uploads_through_the_agent(ai_site: Path, tmp_path: Path):
    study = _study(tmp_path, 200_000)
    sent = ferry("case", "send", "ai", str(study), "--allow-non-dicom")
    assert sent.returncode == 0, sent.stderr
    study_id = sent.stdout.strip()
    assert (ai_site / "input" / study_id / "input" / f"{study_id}.zip").is_file()
    assert "verified: sha256 by server" in sent.stderr
    job = next(j for j in json.loads(ferry("queue", "list", "--json").stdout)
               if j["label"].startswith(f"{study_id}.zip"))
    assert job["state"] == "done" and _case_state(study_id) == "sent"
    log = (agent_home_path() / "logs" / "agent.log").read_text()
    assert f"job {job['id']} queued by cli" in log, "the upload ran in the agent"


def agent_home_path() -> Path:
    return Path(os.environ["FERRY_HOME"])


def test_killed_case_send_the_agent_completes_the_upload_and_the_case(ai_site: Path,
                                                                      tmp_path: Path):
    study = _study(tmp_path, 40 * MIB)
    client = popen("case", "send", "ai", str(study), "--allow-non-dicom",
                   "--study-id", "study-killed", start_new_session=True)
    wait_for(job_moving, timeout=60, what="the study's upload to move")
    os.killpg(client.pid, signal.SIGKILL)
    client.wait(10)
    final = ai_site / "input" / "study-killed" / "input" / "study-killed.zip"
    assert not final.exists(), "killed mid-upload"
    wait_for(lambda: _case_state("study-killed") == "sent", timeout=90,
             what="the agent to complete the case")
    assert final.is_file() and final.stat().st_size > 40 * MIB
    assert not [p for p in final.parent.iterdir() if p.name != final.name], \
        "no temporary file is left beside the study"
