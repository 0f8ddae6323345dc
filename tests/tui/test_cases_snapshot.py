"""Snapshot of the case view at 80×24 in the dark theme: the demo's study-io site.

Deterministic: the demo server's sample studies (fixed UUIDs) in its own thread and loop, case
store rows with fixed times, times shown in UTC, no port on screen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.cases.store import DOWNLOADED, PROCESSING, READY, CaseStore
from backend.demo.runner import DemoServer
from tests.tui import settle, wait_for
from tui.app import FerryApp
from tui.screens.cases import CasesScreen


@pytest.fixture
def demo(ferry_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoServer]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    server = DemoServer.start(
        root=tmp_path / "served", large_file_mib=1, share_service=False, provider=False
    )
    studies = sorted(p.name for p in (server.root / "ai" / "input").iterdir())
    with_results = {p.name[:-4] for p in (server.root / "ai" / "output").iterdir()}
    store = CaseStore()
    done, ready = sorted(with_results)
    store.upsert("demo-ai", done, state=DOWNLOADED, layout="study-io",
                 sent_at="2025-11-20T08:15:00+00:00", ready_at="2025-11-20T11:02:00+00:00",
                 downloaded_at="2025-11-20T11:05:00+00:00",
                 report_path=f"/srv/ferry/cases/demo-ai/{done}/prediction.txt")
    store.upsert("demo-ai", ready, state=READY, layout="study-io",
                 sent_at="2025-11-21T07:40:00+00:00", ready_at="2025-11-21T10:12:00+00:00")
    for study in studies:
        if study not in with_results:
            store.upsert("demo-ai", study, state=PROCESSING, layout="study-io",
                         sent_at="2025-11-21T09:30:00+00:00")
    try:
        yield server
    finally:
        server.stop()
        monkeypatch.delenv("TZ")
        time.tzset()


async def _show(pilot: Any) -> None:
    app = pilot.app
    app.theme = "ferry-dark"
    screen = CasesScreen("demo-ai")
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.loaded and screen.table.row_count == 3)
    app.clear_notifications()
    await settle(pilot)


def test_case_view_snapshot(snap_compare, demo) -> None:
    assert snap_compare(FerryApp(), terminal_size=(80, 24), run_before=_show)
