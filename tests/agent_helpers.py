"""Helpers for the agent tests (tests/test_agent_*.py): ``ferry`` in subprocesses with the
agent enabled, polling the agent, and a fixture that never leaves an agent running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def env(**extra: str) -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    out.pop("FERRY_NO_AGENT", None)
    return {**out, **extra}


def argv(*args: str) -> list[str]:
    return [PYTHON, "-c", "from tui.cli import main; main()", *args]


def ferry(*args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv(*args), env=env(**extra), capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def popen(*args: str, **extra: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(argv(*args), env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **extra)


def agent_pid(home: Path) -> int | None:
    from backend.agent import location

    del home
    return location.read_pid()


def jobs() -> list[dict[str, Any]]:
    result = ferry("queue", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def job_moving(job_id: int | None = None) -> dict[str, Any] | None:
    for job in jobs():
        if (job_id is None or job["id"] == job_id) and job["bytes_done"] > 0 \
                and job["state"] == "running":
            return job
    return None


def alive(pid: int) -> bool:
    from backend.fsutil import pid_alive

    return pid_alive(pid)


@pytest.fixture
def agent_home(ferry_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FERRY_HOME with the agent enabled; whatever agent a test started is stopped after."""
    monkeypatch.delenv("FERRY_NO_AGENT", raising=False)
    monkeypatch.delenv("FERRY_VAULT_PASSPHRASE_FILE", raising=False)
    try:
        yield ferry_home
    finally:
        pid = agent_pid(ferry_home)
        with contextlib.suppress(Exception):
            subprocess.run(argv("agent", "stop"), env=env(), capture_output=True, timeout=30,
                           cwd=ROOT)
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


MIB = 1 << 20
SLOW_SIZE = 64 * MIB
SLOW_RATE = 12 * MIB  # bytes/s over the one connection: ~5 s for the big file
BIG_SIZE = 256 * MIB  # the size the agent issue's kill tests name


@pytest.fixture
def slow_site(request: pytest.FixtureRequest, sshd: Any, tmp_path: Path,
              agent_home: Path) -> Iterator[Any]:
    """Sites on real OpenSSH: ``slow`` behind a 12 MiB/s proxy (tests/proxies.py), so a
    64 MiB ``big.bin`` is still moving when a client is killed, paused or cancelled, and
    ``fast`` direct; both serve ``big.bin`` and ``small.txt`` ("hello agent\n").
    ``@pytest.mark.parametrize("slow_site", [BIG_SIZE], indirect=True)``: a big.bin of that
    size, at a rate that keeps the ~5 s it takes. Yields (served folder, big.bin's SHA-256,
    the proxy)."""
    from backend.sites.store import SiteStore
    from tests.proxies import Proxy
    from tests.transfer_helpers import write_random

    size = int(getattr(request, "param", SLOW_SIZE))
    served = tmp_path / "served"
    digest = write_random(served / "big.bin", size)
    (served / "small.txt").write_text("hello agent\n")
    with Proxy(sshd.port, rate=SLOW_RATE * size / SLOW_SIZE) as proxy:
        SiteStore().add(sshd.site("slow", port=proxy.port, remote_dir=str(served),
                                  max_parallel=1))
        SiteStore().add(sshd.site("fast", remote_dir=str(served)))
        yield served, digest, proxy
