"""Case watchers as agent jobs (docs/agent.md, "Case watchers"): ``ferry case watch SITE
--in-agent`` returns at once and the agent downloads each result once it is stable, with no
terminal; the watcher is saved, so an agent killed with ``kill -9`` and started again watches
on; ``--stop`` ends it. Real OpenSSH on 127.0.0.1 serving the demo's study-io layout."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest

from backend.demo.samples import populate
from backend.sites.store import SiteStore
from tests.agent_helpers import agent_home, agent_pid, alive, ferry, wait_for  # noqa: F401
from tests.case_helpers import snapshot


@pytest.fixture
def ai(sshd, tmp_path: Path, agent_home: Path) -> Path:  # noqa: F811
    base = tmp_path / "served"
    populate(base, large_file_mib=1)
    SiteStore().add(sshd.site("ai", layout="study-io", remote_dir=str(base / "ai")))
    return base / "ai"


def _watchers() -> list[dict]:
    status = ferry("agent", "status", "--json")
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout).get("watchers", [])


def _downloaded(into: Path, outputs: list[Path]) -> bool:
    return all((into / o.name[:-4]).is_dir() and snapshot(into / o.name[:-4]) == snapshot(o)
               for o in outputs)


def test_the_agent_watches_a_site_and_keeps_watching_after_a_crash(ai: Path, tmp_path: Path):
    into = tmp_path / "results"
    started = ferry("case", "watch", "ai", "--in-agent", "--interval", "1", "--into", str(into))
    assert started.returncode == 0, started.stderr
    assert "watches ai every 1 s" in started.stderr
    outputs = sorted((ai / "output").iterdir())
    assert len(outputs) == 2
    wait_for(lambda: _downloaded(into, outputs), timeout=60, what="the agent's downloads")
    [watcher] = _watchers()
    assert watcher["site"] == "ai" and watcher["downloaded"] == 2
    from backend.agent.watchers import saved_path

    assert stat.S_IMODE(saved_path().stat().st_mode) == 0o600

    first = agent_pid(tmp_path)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), what="the agent to die")
    assert ferry("agent", "start").returncode == 0
    assert [w["site"] for w in _watchers()] == ["ai"], "the watcher was not restored"
    # a result that arrives later is fetched by the new agent, with nobody at a terminal
    late = ai / "output" / "study-late_out"
    late.mkdir()
    (late / "prediction.txt").write_text("result: NORMAL\n")
    wait_for(lambda: _downloaded(into, [late]), timeout=60, what="the late result")

    stopped = ferry("case", "watch", "ai", "--stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stderr, stopped.stderr
    assert _watchers() == []
    assert ferry("agent", "stop").returncode == 0
    assert ferry("agent", "start").returncode == 0
    assert _watchers() == [], "a stopped watcher came back"


def test_watching_an_unknown_site_in_the_agent_is_one_clear_error(ai: Path):
    result = ferry("case", "watch", "nosuch", "--in-agent")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("ferry: error: no site named nosuch")
    assert _watchers() == []
