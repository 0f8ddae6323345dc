"""``ferry get`` through the agent: the job outlives its client (docs/agent.md).

Real OpenSSH on 127.0.0.1 behind a rate-limited proxy (tests/proxies.py) so a 64 MiB download
is still moving when the client is killed, paused or cancelled.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.agent_helpers import (
    BIG_SIZE,
    MIB,
    SLOW_SIZE,
    agent_home,  # noqa: F401 (fixture)
    agent_pid,
    alive,
    ferry,
    job_moving,
    jobs,
    popen,
    wait_for,
)
from tests.transfer_helpers import sha256_of

SIZE = SLOW_SIZE


def _done(job_id: int) -> bool:
    return any(j["id"] == job_id and j["state"] == "done" for j in jobs())


def _audited(name: str) -> bool:
    result = ferry("audit", "list", "--json", "--event", "transfer.file")
    assert result.returncode == 0, result.stderr
    return name in result.stdout


def test_get_through_the_agent_prints_what_in_process_prints(slow_site, tmp_path: Path):
    out = tmp_path / "out"
    result = ferry("get", "fast:small.txt", str(out) + "/")
    assert result.returncode == 0, result.stderr
    assert (out / "small.txt").read_text() == "hello agent\n"
    assert result.stdout.startswith("done     ") and "small.txt sha256:" in result.stdout
    assert "job 1: 1 of 1 files done, verified: 1 sha256 by server" in result.stdout
    pid = agent_pid(tmp_path)
    assert pid is not None and alive(pid), "the first get starts the agent"
    status = json.loads(ferry("agent", "status", "--json").stdout)
    assert status["running"] and status["pid"] == pid
    # --json: the same TransferEvent lines as in-process, ending with the done file
    again = ferry("get", "fast:small.txt", str(tmp_path / "out2") + "/", "--json")
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert events[0]["kind"] == "job" and events[0]["state"] == "queued"
    done = [e for e in events if e["kind"] == "file" and e["state"] == "done"]
    assert done and done[0]["verified_by"] == "sha256-server"


def test_unknown_site_and_failure_exit_codes_are_the_same(slow_site, tmp_path: Path):
    assert ferry("get", "nosuch:x", str(tmp_path)).returncode == 3
    missing = ferry("get", "fast:missing.bin", str(tmp_path / "o") + "/")
    here = ferry("get", "fast:missing.bin", str(tmp_path / "o") + "/", "--no-agent")
    assert missing.returncode == here.returncode == 11, missing.stderr
    # the same lines (the job number differs: each run queued its own job)
    assert missing.stderr.replace("job 1", "job N") == here.stderr.replace("job 2", "job N")


@pytest.mark.parametrize("slow_site", [BIG_SIZE], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
def test_killed_client_the_download_completes_in_the_agent(slow_site, tmp_path: Path, sig):
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    # its own session and process group, as a terminal's foreground job is
    client = popen("get", "slow:big.bin", str(out) + "/", start_new_session=True)
    job = wait_for(job_moving, what="the download to move")
    os.killpg(client.pid, sig)  # the terminal hangs up / the SSH session is killed
    client.wait(10)
    assert client.returncode == -sig
    assert not _done(job["id"]), "killed mid-transfer"
    wait_for(lambda: _done(job["id"]), timeout=60, what="the agent to finish the job")
    assert sha256_of(out / "big.bin") == digest
    assert _audited("big.bin")


def test_a_second_client_attaches_and_follows_to_the_end(slow_site, tmp_path: Path):
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    queued = ferry("get", "slow:big.bin", str(out) + "/", "--detach")
    assert queued.returncode == 0, queued.stderr
    job_id = int(queued.stdout.split()[1])
    assert "ferry queue watch" in queued.stdout
    wait_for(lambda: job_moving(job_id), what="the download to move")
    watch = ferry("queue", "watch", str(job_id), "--json", timeout=90)
    assert watch.returncode == 0, watch.stderr
    events = [json.loads(line) for line in watch.stdout.splitlines()]
    progress = [e["bytes_done"] for e in events if e["kind"] == "progress"]
    assert len(progress) >= 3 and progress == sorted(progress)
    assert progress[-1] <= SIZE
    assert any(e["kind"] == "file" and e["state"] == "done" for e in events)
    assert sha256_of(out / "big.bin") == digest


def test_ctrl_c_detaches_and_the_job_goes_on(slow_site, tmp_path: Path):
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    client = popen("get", "slow:big.bin", str(out) + "/")
    job = wait_for(job_moving, what="the download to move")
    client.send_signal(signal.SIGINT)
    _stdout, stderr = client.communicate(timeout=10)
    assert client.returncode == 130
    assert f"detached: job {job['id']} continues in the Ferry agent" in stderr
    assert f"ferry queue watch {job['id']}" in stderr
    wait_for(lambda: _done(job["id"]), timeout=60, what="the job to finish")
    assert sha256_of(out / "big.bin") == digest


def test_kill_9_of_the_agent_the_next_agent_resumes(slow_site, tmp_path: Path):
    _served, digest, proxy = slow_site
    out = tmp_path / "out"
    job_id = int(ferry("get", "slow:big.bin", str(out) + "/", "--detach").stdout.split()[1])
    wait_for(lambda: (j := job_moving(job_id)) and j["bytes_done"] > 8 * MIB,
             what="8 MiB to arrive")
    first = agent_pid(tmp_path)
    assert first is not None
    time.sleep(1.2)  # a journal checkpoint (once a second) has saved the offsets
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), what="the agent to die")
    before = proxy.transferred
    started = ferry("agent", "start")
    assert started.returncode == 0, started.stderr
    assert agent_pid(tmp_path) != first
    watch = ferry("queue", "watch", str(job_id), timeout=90)
    assert watch.returncode == 0, watch.stderr
    assert sha256_of(out / "big.bin") == digest
    assert proxy.transferred - before < SIZE * 0.95, "resumed, not started over"


def test_pause_and_cancel_from_two_clients_at_once(slow_site, tmp_path: Path):
    out = tmp_path / "out"
    job_id = int(ferry("get", "slow:big.bin", str(out) + "/", "--detach").stdout.split()[1])
    wait_for(lambda: job_moving(job_id), what="the download to move")
    pause = popen("queue", "pause", str(job_id))
    cancel = popen("queue", "cancel", str(job_id))
    for proc in (pause, cancel):
        _o, err = proc.communicate(timeout=30)
        assert "Traceback" not in err
        assert proc.returncode in (0, 2), err
    assert cancel.returncode == 0
    final = wait_for(lambda: next((j for j in jobs() if j["id"] == job_id
                                   and j["state"] == "cancelled"), None), what="cancelled")
    assert final["state"] == "cancelled"
    time.sleep(1.0)  # nothing moves it again
    assert next(j for j in jobs() if j["id"] == job_id)["state"] == "cancelled"
    from backend.transfers import Journal

    assert Journal().job(job_id).state == "cancelled"  # the journal agrees with the agent
    assert not list(out.glob("*.ferrypart*")), "a cancelled download leaves no partial file"
    assert not (out / "big.bin").exists()


def test_no_agent_runs_here_and_starts_none(slow_site, tmp_path: Path):
    result = ferry("get", "fast:small.txt", str(tmp_path / "o") + "/", "--no-agent")
    assert result.returncode == 0, result.stderr
    assert agent_pid(tmp_path) is None
    env_off = ferry("get", "fast:small.txt", str(tmp_path / "o2") + "/", FERRY_NO_AGENT="1")
    assert env_off.returncode == 0, env_off.stderr
    assert agent_pid(tmp_path) is None
    assert "no Ferry agent is running" in ferry("agent", "status").stdout
    assert ferry("get", "fast:small.txt", str(tmp_path), "--no-agent",
                 "--detach").returncode == 2

