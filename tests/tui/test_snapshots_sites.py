"""Snapshots of the Sites and Help screens at 80×24 and 120×40, dark and high-contrast.

Each runs with its own FERRY_HOME holding a fixed sites.toml (no real ports or times), so the
pictures only change when the screens do. Update with ``pytest --snapshot-update`` after
checking the new pictures in the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui import settle
from tui.app import FerryApp

SITES_TOML = """\
[sites.idt]
host = "sftp.idt.example"
port = 22
user = "radiology"
auth = "key"
key_file = "/home/admin/.ssh/id_idt"
layout = "inbox-outbox"
last_connected = "2024-05-02T09:15:00+00:00"

[sites.neuro-ai]
host = "10.20.30.40"
port = 2222
user = "uploader"
layout = "study-io"

[sites.odd]
host = "[bold]odd[red].example"
user = "x"
"""

SIZES = [(80, 24), (120, 40)]
THEMES = ["ferry-dark", "ferry-high-contrast"]


@pytest.fixture
def snapshot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ferry-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("FERRY_HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (home / "sites.toml").write_text(SITES_TOML)
    return home


def _with_theme(home: Path, theme: str) -> FerryApp:
    (home / "settings.toml").write_text(f'theme = "{theme}"\n')
    return FerryApp()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_sites_screen(snap_compare, snapshot_home: Path, theme: str, size: tuple) -> None:
    async def ready(pilot) -> None:
        await settle(pilot)

    assert snap_compare(_with_theme(snapshot_home, theme), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_help_screen(snap_compare, snapshot_home: Path, theme: str, size: tuple) -> None:
    async def open_help(pilot) -> None:
        await pilot.pause()
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(
        _with_theme(snapshot_home, theme), terminal_size=size, run_before=open_help
    )
