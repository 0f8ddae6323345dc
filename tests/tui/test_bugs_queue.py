"""The queue panel as a user reads it (issue 14): the totals line says what has moved and what
is left (bug 3); a failed job says why and is in logs/ferry.log, and retry re-creates a
destination folder that vanished (bug 4)."""

from __future__ import annotations

import logging
import shutil

from backend.units import human_size as size_text
from tests.tui import notifications, save_site, wait_for
from tests.tui.browser_kit import browser, goto, loaded, local_dir, make_tree, register_site
from tests.tui.test_queue import slow_server  # noqa: F401  (the fixture)
from tui.app import FerryApp
from tui.widgets.queue_panel import QueuePanel


def _jobs(app) -> list:
    return app.engine.jobs() if app.engine is not None else []


async def test_totals_line_says_moved_and_left(ferry_home, slow_server, tmp_path,  # noqa: F811
                                              monkeypatch):
    # 32 MiB: ~40 s at the slow server's pace, so the job is still under way when paused on a
    # loaded machine (it is stopped, never waited for)
    payload = bytes(range(256)) * 4096 * 32
    make_tree(slow_server.root / "data", {"big.raw": payload})
    local_dir(tmp_path, monkeypatch)
    save_site(slow_server.site("slow", remote_dir="/data"))
    app = FerryApp(start_site="slow")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "big.raw")
        await pilot.press("f5")
        await wait_for(pilot, lambda: _jobs(app) and _jobs(app)[0].bytes_done > 0)
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        await pilot.press("p")
        await wait_for(pilot, lambda: _jobs(app)[0].state == "paused")
        job = _jobs(app)[0]
        totals = panel.query_one(".queue-totals")
        expected = (f"{size_text(job.bytes_done)} of {size_text(len(payload))} moved, "
                    f"{size_text(len(payload) - job.bytes_done)} left")
        await wait_for(pilot, lambda: expected in str(totals.render()))
        assert "1 transfer ·" in str(totals.render())  # not "1 transfers"
        await pilot.press("x")  # a transfer under way: asks first
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: _jobs(app)[0].state == "cancelled")


async def test_failed_row_gives_the_reason_and_retry_recreates_the_folder(
    ferry_home, sftp_server, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, logger="ferry")
    make_tree(sftp_server.root / "data", {"volume.raw": b"v" * 5000})
    local = local_dir(tmp_path, monkeypatch)
    dest = local / "dl"
    (dest / "volume.raw").mkdir(parents=True)  # the destination name is taken by a folder
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = await browser(pilot)
        await goto(pilot, screen.left, "dl")
        await pilot.press("enter")
        await loaded(pilot, screen.left, str(dest))
        await pilot.press("tab")
        await goto(pilot, screen.right, "volume.raw")
        await pilot.press("f5")
        await wait_for(pilot, lambda: _jobs(app) and _jobs(app)[0].state == "failed")
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        detail = panel.query_one(".queue-detail")
        await wait_for(pilot, lambda: "is a folder" in str(detail.render()))
        assert "volume.raw" in str(detail.render())
        assert any("is a folder" in n for n in notifications(app))
        assert any("volume.raw" in r.getMessage() and "is a folder" in r.getMessage()
                   for r in caplog.records)  # what logs/ferry.log gets

        shutil.rmtree(dest)  # the whole destination folder vanishes before the retry
        await pilot.press("r")
        await wait_for(pilot, lambda: _jobs(app)[0].state in ("done", "failed"), seconds=30)
        assert _jobs(app)[0].state == "done", _jobs(app)[0].error
    assert (dest / "volume.raw").read_bytes() == b"v" * 5000
