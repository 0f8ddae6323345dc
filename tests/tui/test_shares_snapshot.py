"""Snapshot of the Shares screen at 80×24 in the dark theme.

Deterministic: the share service runs in its own thread and loop (snapshots run the app
synchronously) with a fixed clock and sequential ids, the screen's countdown uses a fixed
``now``, and no port or token is on screen. One share was downloaded once, one revoked, and one
has a name that looks like markup (shown literally).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend.shares.server import start_share_service, stop_share_service
from backend.shares.service import ShareService
from tests.tui import settle, wait_for
from tui.app import FerryApp
from tui.screens.shares import SharesScreen

FIXED = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class ThreadedService:
    """The share service on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.now = FIXED
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handle: Any = None

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> Any:
        service = ShareService(public_url="http://placeholder", clock=lambda: self.now)
        handle, _ = await start_share_service("127.0.0.1:0", service=service,
                                              purge_interval=3600)
        return handle

    def start(self) -> None:
        self.handle = self.call(self._start())

    def share(self, name: str, recipients: list[str], minute: int, **options: Any) -> Any:
        self.now = FIXED + timedelta(minutes=minute)
        data = name.encode() * 100

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return self.call(self.handle.service.create_share(
            chunks(), name=name, size=len(data), recipients=recipients,
            password="correct horse battery", **options))

    def stop(self) -> None:
        if self.handle is not None:
            self.call(stop_share_service(self.handle))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def shares(ferry_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedService]:
    counter = itertools.count(1)
    monkeypatch.setattr("backend.shares.tokens.new_id", lambda: f"id{next(counter):04d}")
    monkeypatch.setattr("tui.screens.shares.EVENT_WAIT", 1.0)
    svc = ThreadedService()
    try:
        svc.start()
        first = svc.share("CASE-20261119-0032.zip", ["alice@nhs.net", "bob@nhs.net"], 0,
                          max_downloads=2)
        url = first.links[0]["url"].replace("http://placeholder", svc.handle.url)
        body = urllib.parse.urlencode({"password": "correct horse battery"}).encode()
        with urllib.request.urlopen(url + "/download", data=body, timeout=30) as resp:
            assert resp.read()
        for _ in range(200):  # the download is counted just after its last byte is sent
            if svc.handle.service.get_share(first.share.id).public()["downloads"] == 1:
                break
            time.sleep(0.02)
        second = svc.share("ct-head-series.zip", ["dr.jones@example.org"], 5)
        svc.call(svc.handle.service.revoke(second.share.id))
        svc.share("[bold]report[red].pdf", ["lab@example.org"], 10,
                  expires=timedelta(days=1))
        yield svc
    finally:
        svc.stop()


async def _show(pilot: Any) -> None:
    app = pilot.app
    app.theme = "ferry-dark"
    screen = SharesScreen(now=lambda: FIXED + timedelta(hours=5))
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.loaded and screen.table.row_count == 3)
    app.clear_notifications()
    await settle(pilot)


def test_shares_screen_snapshot(snap_compare, shares) -> None:
    assert snap_compare(FerryApp(), terminal_size=(80, 24), run_before=_show)
