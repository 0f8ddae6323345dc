"""Snapshots of the browser (case markers showing) and of the queue panel, at 80×24 and
120×40, in the dark and high-contrast themes.

Content is deterministic: the demo's sample cases served by the demo server (its own thread
and loop, since snapshots run the app synchronously), every mtime fixed, times in UTC, the
local pane on a fixed path, and no variable text (ports are never shown).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.demo.runner import DemoServer
from tests.tui import settle, wait_for
from tests.tui.browser_kit import browser, goto, loaded
from tui.app import FerryApp
from tui.widgets.queue_panel import QueuePanel

FIXED = 1_763_700_000  # 2025-11-21 04:40 UTC
LOCAL = Path("/tmp/ferry-snapshot-local")  # shown in the snapshots, so one path for every run:
# under pytest-xdist (`make test`: --dist loadgroup) this module's tests share one worker
pytestmark = pytest.mark.xdist_group("snapshot-local")


def _freeze(root: Path) -> None:
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.utime(Path(dirpath) / name, (FIXED, FIXED), follow_symlinks=False)
    os.utime(root, (FIXED, FIXED))


@pytest.fixture
def demo(ferry_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoServer]:
    # ... and a lock for another pytest run on this machine (another checkout) using LOCAL too
    with open(f"{LOCAL}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        shutil.rmtree(LOCAL, ignore_errors=True)
        (LOCAL / "outgoing" / "CASE-LOCAL-0001").mkdir(parents=True)
        (LOCAL / "outgoing" / "CASE-LOCAL-0001" / "scan.dcm").write_bytes(b"D" * 4096)
        (LOCAL / "notes.txt").write_text("handover notes\n")
        _freeze(LOCAL)
        monkeypatch.chdir(LOCAL)
        server = DemoServer.start(
            root=tmp_path / "served", large_file_mib=1, share_service=False, provider=False
        )
        _freeze(server.root)
        try:
            yield server
        finally:
            server.stop()
            shutil.rmtree(LOCAL, ignore_errors=True)
            monkeypatch.delenv("TZ")
            time.tzset()


def _inbox(theme: str):
    async def run_before(pilot: Any) -> None:
        pilot.app.theme = theme
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "From_IDT")
        await pilot.press("enter")
        await loaded(pilot, screen.right, "/idt/From_IDT")
        await goto(pilot, screen.right, "CASE-20261119-0032")
        pilot.app.clear_notifications()
        await settle(pilot)

    return run_before


def _queue(theme: str):
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        app.theme = theme
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "From_IDT")
        await pilot.press("enter")
        await loaded(pilot, screen.right, "/idt/From_IDT")
        for case in ("CASE-20261118-0031", "CASE-20261119-0032"):
            await goto(pilot, screen.right, case)
            await pilot.press("f5")
            await wait_for(pilot, lambda: app.engine.jobs()
                           and all(j.state == "done" for j in app.engine.jobs()))
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        await wait_for(pilot, lambda: panel.table.row_count == 2
                       and "done" in str(panel.table.get_row_at(1)[-1]))
        await wait_for(pilot, lambda: len(screen.left.entries) == 4)
        _freeze(LOCAL)  # the copies were just written: give them the fixed time too
        screen.left.reload()
        await loaded(pilot, screen.left, str(LOCAL))
        await goto(pilot, screen.right, "CASE-20261119-0032")
        await goto(pilot, screen.left, "CASE-20261118-0031")
        panel.table.focus()
        panel.table.move_cursor(row=0)
        app.clear_notifications()
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("theme", ["ferry-dark", "ferry-high-contrast"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_browser_snapshot(snap_compare, demo, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(FerryApp(start_site="demo"), terminal_size=size,
                        run_before=_inbox(theme))


@pytest.mark.parametrize("theme", ["ferry-dark", "ferry-high-contrast"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_queue_panel_snapshot(snap_compare, demo, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(FerryApp(start_site="demo"), terminal_size=size,
                        run_before=_queue(theme))
