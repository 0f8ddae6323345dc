"""State and logs in the platform's folders (backend/paths.py), config where it was, with a
one-time, logged move of an older installation's state/ and logs/; FERRY_HOME still puts
everything under one root. HOME and XDG_* point into a temp folder, FERRY_HOME is unset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "stores-v0"


def platform_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("XDG_") and k not in ("FERRY_HOME", "SSH_AUTH_SOCK")}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_STATE_HOME=str(tmp_path / "statehome"), PYTHONPATH=str(ROOT), CI="1",
               FERRY_NO_AGENT="1", FERRY_NONINTERACTIVE="1")
    return env


def ferry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-c", "from tui.cli import main; main()", *args],
                            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_an_old_installation_is_moved_once_and_logged(tmp_path: Path) -> None:
    config = tmp_path / "config" / "ferry"
    (config / "state").mkdir(parents=True)
    (config / "logs").mkdir()
    shutil.copy(FIXTURES / "transfers.sqlite", config / "state" / "transfers.sqlite")
    (config / "logs" / "ferry.log").write_text("an old line\n")
    (config / "sites.toml").write_text("")
    env = platform_env(tmp_path)

    result = ferry(env, "queue", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert '"site": "pacs"' in result.stdout  # the old queue, found at its new place

    state = tmp_path / "statehome" / "ferry"
    logs = state / "log"
    assert (state / "transfers.sqlite").is_file()
    assert (state / "transfers.sqlite.bak-v0").is_file()  # and migrated there (backend/db.py)
    assert not (config / "state").exists() and not (config / "logs").exists()
    assert (config / "sites.toml").is_file()  # configuration stays
    text = (logs / "ferry.log").read_text()
    assert text.startswith("an old line\n")
    assert f"moved {config / 'state' / 'transfers.sqlite'} to {state / 'transfers.sqlite'}" in text
    assert oct(state.stat().st_mode & 0o777) == "0o700"

    assert text.count("ferry.paths: moved ") == 2  # the queue and the old log

    again = ferry(env, "queue", "list", "--json")
    assert again.returncode == 0 and '"site": "pacs"' in again.stdout
    assert (logs / "ferry.log").read_text().count("ferry.paths: moved ") == 2  # once only


def test_a_new_installation_uses_the_platform_folders(tmp_path: Path) -> None:
    env = platform_env(tmp_path)
    assert ferry(env, "queue", "list").returncode == 0
    assert (tmp_path / "statehome" / "ferry" / "transfers.sqlite").is_file()
    assert (tmp_path / "statehome" / "ferry" / "log" / "ferry.log").is_file()
    assert not (tmp_path / "config" / "ferry" / "state").exists()
    assert not (tmp_path / "config" / "ferry" / "logs").exists()


def test_an_entry_already_at_the_new_place_is_not_overwritten(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              ) -> None:
    from backend import paths

    for key, value in platform_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FERRY_HOME", raising=False)
    monkeypatch.setattr(paths, "_moved_once", False)
    old = tmp_path / "config" / "ferry" / "state"
    old.mkdir(parents=True)
    (old / "cases.sqlite").write_text("old")
    (old / "audit.sqlite").write_text("old audit")
    new = tmp_path / "statehome" / "ferry"
    new.mkdir(parents=True)
    (new / "cases.sqlite").write_text("new")
    assert paths.state_dir() == new
    assert (new / "cases.sqlite").read_text() == "new"
    assert (new / "audit.sqlite").read_text() == "old audit"
    assert (old / "cases.sqlite").read_text() == "old"  # kept, and said so
    assert any("kept" in line for line in paths.take_moves())


def test_ferry_home_keeps_everything_under_one_root(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import paths

    for key, value in platform_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "one"))
    assert paths.state_dir() == tmp_path / "one" / "state"
    assert paths.logs_dir() == tmp_path / "one" / "logs"
    assert paths.sites_file() == tmp_path / "one" / "sites.toml"
    assert not (tmp_path / "statehome").exists()
