"""A dropped terminal never leaves a spinning Ferry: the TUI (``ferry demo``) in tmux is gone
within 2 s after the tmux session is killed; so is one whose stdin is closed under it
(tui/terminal_guard.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.agent_helpers import (
    ROOT,
    agent_home,  # noqa: F401 (fixture)
    agent_pid,
    alive,
    argv,
    env,
    wait_for,
)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _children(pid: int) -> set[int]:
    out = {pid}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            for kid in kids:
                out |= _children(int(kid))
    except OSError:
        pass
    return out


def _ferry_pids(root: int) -> set[int]:
    found = set()
    for pid in _children(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"tui.cli" in cmdline:
            found.add(pid)
    return found


def _alive(pids: set[int]) -> set[int]:
    from backend.fsutil import pid_alive

    return {p for p in pids if pid_alive(p)}


def _wait_gone(pids: set[int], within: float) -> float:
    started = time.monotonic()
    while _alive(pids) and time.monotonic() - started < within + 3:
        time.sleep(0.05)
    return time.monotonic() - started


def _wait_started(home: Path, root: int) -> set[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = _ferry_pids(root)
        if pids and (home / "sites.toml").exists():
            time.sleep(1.5)  # the TUI is drawn and its input thread runs
            return pids
        time.sleep(0.1)
    raise AssertionError("ferry demo did not start")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("hup,agent", [("default", False), ("ignored", False),
                                       ("default", True), ("ignored", True)])
def test_killing_the_tmux_session_ends_ferry_demo(
        agent_home: Path, tmp_path: Path, hup: str, agent: bool) -> None:  # noqa: F811
    """``ignored``: SIGHUP ignored as under ``make`` or ``nohup``: only the dead pty says so.
    ``agent``: as ``make demo`` runs it, attached to the Ferry agent — the agent stays (it
    owns the transfers) but idles: no Ferry process is left using CPU."""
    server = f"ferry-test-{os.getpid()}"
    trap = "trap '' HUP; " if hup == "ignored" else ""
    command = " ".join(f"'{a}'" for a in argv("demo", "--large-file-mib", "1"))
    environment = env(CI="", FERRY_NONINTERACTIVE="",
                      **({} if agent else {"FERRY_NO_AGENT": "1"}))
    subprocess.run(["tmux", "-L", server, "new-session", "-d", "-s", "demo", "-x", "120",
                    "-y", "40", f"{trap}cd {ROOT} && exec {command}"],
                   env=environment, check=True, timeout=30)
    try:
        pane = int(subprocess.run(["tmux", "-L", server, "list-panes", "-t", "demo", "-F",
                                   "#{pane_pid}"], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        pids = _wait_started(agent_home, pane)
        if agent:
            wait_for(lambda: agent_pid(agent_home), what="the demo's TUI to start the agent")
        subprocess.run(["tmux", "-L", server, "kill-session", "-t", "demo"], timeout=10)
        took = _wait_gone(pids, 2.0)
        assert not _alive(pids), "ferry demo is still running after its terminal died"
        assert took < 2.0, f"ferry took {took:.1f}s to exit"
        pid = agent_pid(agent_home)
        if not agent:
            assert pid is None, "FERRY_NO_AGENT=1 started an agent"
            return
        assert pid is not None and alive(pid), "the agent went with the terminal"
        before = _cpu_seconds(pid)
        time.sleep(2.0)
        used = _cpu_seconds(pid) - before
        assert used < 0.2, f"the agent used {used:.2f} s of CPU in 2 s while idle"
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)


def test_stdin_closed_under_a_live_tui_ends_it(ferry_home: Path, tmp_path: Path):
    master, slave = os.openpty()
    proc = subprocess.Popen(argv("demo", "--large-file-mib", "1"),
                            env=env(FERRY_NO_AGENT="1", CI="", FERRY_NONINTERACTIVE=""),
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                            start_new_session=True)
    os.close(slave)
    try:
        _wait_started(ferry_home, proc.pid)
        # the session dies without a SIGHUP reaching Ferry: the pty's other end goes away
        os.close(master)
        master = -1
        started = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        took = time.monotonic() - started
        assert proc.poll() is not None, "ferry demo kept running on a dead terminal"
        assert took < 2.0, f"ferry took {took:.1f}s to exit"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if master >= 0:
            os.close(master)
