"""A move started in the browser survives quitting Ferry (issue 14, "durable moves"): the job
is journaled as a move, so the next start resumes the copy, verifies it and only then deletes
the original — for an upload (F6 from the local pane) and for a site-to-site move."""

from __future__ import annotations

import asyncio

from backend.relay import relay_root
from backend.transfers import Journal
from tests.proxies import Proxy
from tests.transfer_helpers import sha256_of, write_random
from tests.tui import save_site, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog

MiB = 1024 * 1024


def _offset_past(limit: int) -> bool:
    journal = Journal()
    return any(f.offset > limit for j in journal.job_rows() for f in journal.files(j.id))


async def _quit(app: FerryApp) -> None:
    app.exit()
    await asyncio.sleep(0)


async def test_quitting_mid_move_then_restarting_completes_the_move(
        ferry_home, sftp_server, tmp_path, monkeypatch):
    local = local_dir(tmp_path, monkeypatch)
    want = write_random(local / "volume.raw", 6 * MiB, seed=31)
    (sftp_server.root / "inbox").mkdir()
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        save_site(sftp_server.site("lab", port=proxy.port, remote_dir="/inbox"))
        app = FerryApp(start_site="lab")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await browser(pilot)
            await goto(pilot, screen.left, "volume.raw")
            await pilot.press("f6")
            await wait_for_screen(pilot, ConfirmDialog)
            await pilot.click("#confirm")
            await wait_for(pilot, lambda: _offset_past(MiB), seconds=30)
            await _quit(app)
        (job,) = Journal().job_rows()
        assert job.state == "queued"  # stopped with its offsets saved, still a move
        assert (local / "volume.raw").exists()
        assert not (sftp_server.root / "inbox" / "volume.raw").exists()

        proxy.rate = None
        app = FerryApp()  # the next start: the Sites screen; the queue runs by itself
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: not (local / "volume.raw").exists(), seconds=60)
            await wait_for(pilot, lambda: Journal().job_rows()[0].state == "done")
    assert sha256_of(sftp_server.root / "inbox" / "volume.raw") == want
    (row,) = Journal().files(job.id)
    assert row.state == "done" and row.verify not in (None, "none")


async def test_quitting_mid_site_to_site_move_then_restarting_completes_it(
        ferry_home, sftp_server, tmp_path, monkeypatch):
    local_dir(tmp_path, monkeypatch)
    want = write_random(sftp_server.root / "pacs" / "study.zip", 6 * MiB, seed=32)
    (sftp_server.root / "archive").mkdir()
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        save_site(sftp_server.site("pacs", port=proxy.port, remote_dir="/pacs"))
        save_site(sftp_server.site("archive", remote_dir="/archive"))
        app = FerryApp(start_site="archive")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await browser(pilot)
            screen.open_in_pane(screen.left, "pacs")
            await wait_for(pilot, lambda: screen.left.source is not None
                           and screen.left.listed and screen.left.rows)
            await pilot.pause()
            screen.left.focus_table()
            await goto(pilot, screen.left, "study.zip")
            await pilot.press("f6")
            await wait_for_screen(pilot, ConfirmDialog)
            await pilot.click("#confirm")
            await wait_for(pilot, lambda: _offset_past(MiB), seconds=30)
            await _quit(app)
        assert (sftp_server.root / "pacs" / "study.zip").exists()
        assert [j.state for j in Journal().job_rows()] == ["queued"]  # the download leg

        proxy.rate = None
        app = FerryApp()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: not (sftp_server.root / "pacs" / "study.zip").exists(),
                           seconds=60)
            await wait_for(pilot, lambda: [j.state for j in Journal().job_rows()]
                           == ["done", "done"])
    assert sha256_of(sftp_server.root / "archive" / "study.zip") == want
    assert list(relay_root().iterdir()) == []
