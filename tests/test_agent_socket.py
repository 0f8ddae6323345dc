"""The agent's socket: private modes, same uid only, versioned hello, stale sockets, one agent
per FERRY_HOME, SIGHUP ignored (docs/agent.md)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from backend.agent import client as agent
from backend.agent import location
from backend.errors import AgentError
from tests.agent_helpers import agent_home, agent_pid, alive, ferry, wait_for  # noqa: F401

OTHER = "ferry-agent-other"


def _start() -> int:
    started = ferry("agent", "start")
    assert started.returncode == 0, started.stderr
    pid = agent_pid(Path())
    assert pid is not None
    return pid


def test_folder_and_socket_are_private(agent_home: Path, monkeypatch):  # noqa: F811
    # a short FERRY_HOME: a long one (pytest-xdist's per-worker tmp_path) would put the socket
    # in the documented /tmp/ferry-<uid>/<hash> fallback (backend/agent/location.py)
    home = Path(tempfile.mkdtemp(prefix="fa-"))
    monkeypatch.setenv("FERRY_HOME", str(home))
    try:
        _start()
        sock = location.socket_path()
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
        assert str(sock).startswith(str(home))  # FERRY_HOME isolates the agent
    finally:
        ferry("agent", "stop")
        monkeypatch.setenv("FERRY_HOME", str(agent_home))
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def other_user() -> pwd.struct_passwd:
    if os.getuid() != 0:
        pytest.fail("creating a second local user needs root (the tests and CI run as root)")
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               OTHER], capture_output=True, text=True)
        # 9: another pytest-xdist worker created it meanwhile
        assert made.returncode in (0, 9), made.stderr
        return pwd.getpwnam(OTHER)


_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", exc.strerror); sys.exit(0)
try:
    s.sendall(b'{"type":"hello","version":1,"client":"intruder"}\n')
except BrokenPipeError:
    pass  # the agent refused at once: its one line is waiting to be read
print("reply:", s.makefile().readline().strip())
"""


def _as_other(user: pwd.struct_passwd, path: str) -> str:
    result = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
         "/usr/bin/python3", "-c", _CLIENT, path],
        capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_another_uid_is_refused(agent_home: Path, other_user, tmp_path: Path):  # noqa: F811
    _start()
    sock = location.socket_path()
    # the folder (0700) already keeps the other user out
    assert "Permission denied" in _as_other(other_user, str(sock))
    # and if a mistake opened the socket to everyone, the peer's uid is still refused
    opened = Path("/tmp") / f"ferry-agent-test-{os.getpid()}"
    opened.mkdir(mode=0o755, exist_ok=True)
    try:
        os.chmod(opened, 0o755)
        link = opened / "agent.sock"
        os.link(sock, link)
        os.chmod(link, 0o666)
        out = _as_other(other_user, str(link))
        assert out.startswith("reply:"), out
        reply = json.loads(out.split(":", 1)[1])
        assert reply["type"] == "error"
        assert f"serves uid {os.getuid()} only, not uid {other_user.pw_uid}" in \
            reply["error"]["message"]
    finally:
        for p in opened.glob("*"):
            p.unlink()
        opened.rmdir()
    os.chmod(sock, 0o600)
    assert "the Ferry agent runs" in ferry("agent", "status").stdout  # still serving its user


def test_protocol_mismatch_is_one_clear_error(agent_home: Path):  # noqa: F811
    _start()

    async def hello() -> None:
        await agent.connect(version=99)

    with pytest.raises(AgentError) as caught:
        asyncio.run(hello())
    assert "speaks protocol version 1, the client speaks 99" in caught.value.message
    assert "ferry agent stop" in (caught.value.hint or "")
    assert caught.value.exit_code == 18


def test_stale_socket_of_a_crashed_agent_is_cleaned_up(agent_home: Path):  # noqa: F811
    first = _start()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), what="the agent to die")
    assert location.socket_path().exists(), "kill -9 leaves its socket behind"
    status = ferry("agent", "status")
    assert "no Ferry agent is running" in status.stdout
    second = _start()
    assert second != first and alive(second)
    # a socket file nobody listens on (bound, never listening) is removed too
    ferry("agent", "stop")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(location.socket_path()))
    dead.close()
    third = _start()
    assert alive(third)


def test_one_agent_per_home_and_sighup_is_ignored(agent_home: Path):  # noqa: F811
    pid = _start()
    assert os.getsid(pid) != os.getsid(0), "the agent has its own session (no terminal)"
    again = ferry("agent", "run")
    assert again.returncode == 18
    assert "already" in again.stderr
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP ignored" in location.log_path().read_text(), what="the log")
    assert alive(pid)
    assert json.loads(ferry("agent", "status", "--json").stdout)["pid"] == pid
    stopped = ferry("agent", "stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not location.socket_path().exists()
    wait_for(lambda: not alive(pid), what="the agent to exit")


def test_install_unit_writes_a_systemd_user_unit(agent_home: Path, tmp_path: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch):
    result = ferry("agent", "install-unit", "--relock-after", "600",
                   XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "cfg" / "systemd" / "user" / "ferry-agent.service").read_text()
    assert "-m backend.agent run --relock-after 600" in unit
    assert f"FERRY_HOME={agent_home}" in unit
    assert "loginctl enable-linger" in result.stdout
