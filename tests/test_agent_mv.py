"""``ferry mv`` through the agent (docs/agent.md): the move's copy and its finisher (each
original deleted only after its copy is verified: backend/transfers/moves.py) run in the agent,
so a killed ``ferry mv`` still ends with the file moved — never with both copies gone.
Real OpenSSH behind the rate-limited proxy of the ``slow_site`` fixture (tests/agent_helpers.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.agent_helpers import ferry, job_moving, jobs, popen, wait_for
from tests.transfer_helpers import sha256_of


def test_mv_prints_what_it_did_through_the_agent(slow_site, tmp_path: Path):
    served, _digest, _proxy = slow_site
    out = tmp_path / "out"
    out.mkdir()
    result = ferry("mv", "fast:small.txt", str(out) + "/")
    assert result.returncode == 0, result.stderr
    assert (out / "small.txt").read_text() == "hello agent\n"
    assert not (served / "small.txt").exists(), "the original was not deleted"
    assert "1 original(s) deleted after a verified copy" in result.stdout + result.stderr
    log = (Path(os.environ["FERRY_HOME"]) / "logs" / "agent.log").read_text()
    assert "queued by cli" in log, "the move ran in the agent"


def test_killed_mv_the_agent_finishes_the_move(slow_site, tmp_path: Path):
    served, digest, _proxy = slow_site
    out = tmp_path / "out"
    out.mkdir()
    client = popen("mv", "slow:big.bin", str(out) + "/", start_new_session=True)
    job = wait_for(job_moving, what="the move's download to move")
    os.killpg(client.pid, signal.SIGKILL)
    client.wait(10)
    assert (served / "big.bin").exists(), "killed mid-transfer: the original is still there"

    def moved() -> bool:
        state = next(j["state"] for j in jobs() if j["id"] == job["id"])
        return state == "done" and not (served / "big.bin").exists()

    wait_for(moved, timeout=90, what="the agent to finish the move")
    assert sha256_of(out / "big.bin") == digest


def test_mv_through_the_agent_reports_only_its_own_jobs(slow_site, tmp_path: Path):
    """The agent runs other people's jobs too (a TUI's, a detached get): ``ferry mv --json``
    through it prints events of its own move only, never of another job."""
    import json

    out = tmp_path / "out"
    out.mkdir()
    other = ferry("get", "slow:big.bin", str(tmp_path / "other") + "/", "--detach")
    assert other.returncode == 0, other.stderr
    other_job = int(other.stdout.split()[1])
    wait_for(lambda: job_moving(other_job), what="the other job to move")
    result = ferry("mv", "fast:small.txt", str(out) + "/", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    jobs_shown = {e["job_id"] for e in events if "job_id" in e}
    assert jobs_shown and other_job not in jobs_shown, jobs_shown
