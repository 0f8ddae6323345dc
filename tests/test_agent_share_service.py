"""The share service inside the agent (docs/agent.md, "The share service"): ``ferry serve
--in-agent`` returns at once, links work (a real download with curl), the service comes back
with the next agent after ``kill -9``, and ``ferry serve --stop`` ends it for good."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from tests.agent_helpers import agent_home, agent_pid, alive, ferry, wait_for  # noqa: F401
from tests.servers import free_port


def _status() -> dict:
    result = ferry("agent", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _download(url: str, password: str, dest: Path) -> int:
    return subprocess.run(["curl", "-fsS", "-d", f"password={password}", url + "/download",
                           "-o", str(dest)], timeout=60).returncode


def test_share_service_in_the_agent_survives_a_crash(agent_home: Path,  # noqa: F811
                                                     tmp_path: Path):
    port = free_port()
    started = ferry("serve", "--in-agent", "--listen", f"127.0.0.1:{port}")
    assert started.returncode == 0, started.stderr
    assert f"listening on http://127.0.0.1:{port}" in started.stderr
    assert "inside the Ferry agent" in started.stderr
    assert f"links: http://127.0.0.1:{port}/s/..." in started.stderr
    from backend.agent.sharehost import saved_path

    assert stat.S_IMODE(saved_path().stat().st_mode) == 0o600

    src = tmp_path / "study.zip"
    src.write_bytes(os.urandom(200_000))
    (tmp_path / "pw").write_text("a long enough password\n")
    created = ferry("share", "create", str(src), "--password-file", str(tmp_path / "pw"),
                    "--json")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["links"][0]["url"]
    assert _download(url, "a long enough password", tmp_path / "got1") == 0
    assert hashlib.sha256((tmp_path / "got1").read_bytes()).digest() == \
        hashlib.sha256(src.read_bytes()).digest()

    first = agent_pid(tmp_path)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), what="the agent to die")
    assert ferry("agent", "start").returncode == 0
    served = _status()["share_service"]
    assert served and served["url"] == f"http://127.0.0.1:{port}", served
    assert _download(url, "a long enough password", tmp_path / "got2") == 0, \
        "the link does not work after the agent restarted"

    stopped = ferry("serve", "--stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stderr, stopped.stderr
    assert _status()["share_service"] is None
    assert _download(url, "a long enough password", tmp_path / "got3") != 0
    assert ferry("agent", "stop").returncode == 0
    assert ferry("agent", "start").returncode == 0
    assert _status()["share_service"] is None, "a stopped service came back"


def test_a_taken_port_is_one_clear_error_and_nothing_is_saved(agent_home: Path):  # noqa: F811
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ferry("serve", "--in-agent", "--listen", f"127.0.0.1:{port}")
    assert result.returncode != 0
    assert result.stderr.startswith("ferry: error:") and len(result.stderr.splitlines()) <= 2
    assert _status()["share_service"] is None
