"""Transfers from the browser through the real engine, and the queue panel that shows them:
copy a folder both ways, move (originals deleted only after a verified copy), pause and
resume, the status-bar summary, and the failed row's full error."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from backend.demo.server import start_sftp_server
from tests.servers import InProcessServer
from tests.tui import notifications, save_site, wait_for, wait_for_screen
from tests.tui.browser_kit import (
    browser,
    goto,
    loaded,
    local_dir,
    make_tree,
    read_tree,
    register_site,
)
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog
from tui.widgets.queue_panel import QueuePanel, QueueSummary

CASE = {
    "CASE-7": {
        "report.txt": b"no acute abnormality\n",
        "series_001": {f"IM{i:04d}.dcm": bytes([i]) * (1000 + i * 37) for i in range(6)},
        "empty": {},
    }
}


@pytest.fixture(params=["in-process", "agent"])
def through(request: pytest.FixtureRequest) -> str:
    """Where the TUI's transfers run: its own engine, or the Ferry agent it attaches to
    (docs/agent.md, "The TUI"): the same keys give the same outcomes either way."""
    if request.param == "agent":
        request.getfixturevalue("agent_home")  # the agent enabled, and stopped after the test
    return str(request.param)


def _check_engine(app, through: str) -> None:
    from backend.agent.remote import AgentEngine

    assert isinstance(app.engine, AgentEngine) == (through == "agent"), app.engine


def _jobs(app) -> list:
    return app.engine.jobs() if app.engine is not None else []


def _describe(app) -> str:
    """Each job's state and error, for assertion messages."""
    lines = []
    for job in _jobs(app):
        lines.append(f"{job.id} {job.label} {job.state} {job.error}")
        lines += [f"  {f.source} -> {f.destination} {f.state} {f.error}"
                  for f in app.engine.files(job.id)]
    return "\n".join(lines)


async def _finished(pilot, app, count: int) -> None:
    await wait_for(
        pilot,
        lambda: len(_jobs(app)) >= count
        and all(j.state in ("done", "failed", "cancelled") for j in _jobs(app)),
        seconds=60,
    )


async def test_copy_a_folder_both_ways(ferry_home, sftp_server, tmp_path, monkeypatch, through):
    make_tree(sftp_server.root / "data", CASE)
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local / "upload", {"UP-1": {"a.bin": b"a" * 70_000, "deep": {"b.txt": b"b"}}})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await browser(pilot)
        assert app.engine is not None
        _check_engine(app, through)
        await pilot.press("tab")
        await goto(pilot, screen.right, "CASE-7")
        await pilot.press("f5")  # remote -> local
        await _finished(pilot, app, 1)
        assert _jobs(app)[0].state == "done", _describe(app)
        assert read_tree(local / "CASE-7") == read_tree(sftp_server.root / "data" / "CASE-7")
        assert (local / "CASE-7" / "empty").is_dir()
        await wait_for(pilot, lambda: any("Transfer finished" in n or "CASE-7" in n
                                          for n in notifications(app)))
        await wait_for(pilot, lambda: "CASE-7" in [e.name for e in screen.left.entries])

        await pilot.press("tab")  # local pane
        await goto(pilot, screen.left, "upload")
        await pilot.press("enter")
        await loaded(pilot, screen.left, str(local / "upload"))
        await goto(pilot, screen.left, "UP-1")
        await pilot.press("f5")  # local -> remote
        await _finished(pilot, app, 2)
        assert all(j.state == "done" for j in _jobs(app)), _describe(app)
        assert read_tree(sftp_server.root / "data" / "UP-1") == read_tree(local / "upload/UP-1")
        await wait_for(pilot, lambda: "UP-1" in [e.name for e in screen.right.entries])

        queue = app.screen.query_one(QueuePanel)
        await pilot.press("t")  # show the queue
        await wait_for(pilot, lambda: queue.table.row_count == 2 and queue.table.size.width)
        queue.table.move_cursor(row=1)
        await pilot.pause()
        chosen = queue.selected().id
        await pilot.resize_terminal(120, 30)  # the queue's columns are re-planned
        await wait_for(pilot, lambda: queue.table.row_count == 2)
        assert queue.table.cursor_row == 1 and queue.selected().id == chosen


async def test_move_deletes_the_originals_after_the_copy(ferry_home, sftp_server, tmp_path,
                                                         monkeypatch):
    make_tree(sftp_server.root / "data", CASE)
    local = local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        expected = read_tree(sftp_server.root / "data" / "CASE-7")
        await pilot.press("tab")
        await goto(pilot, screen.right, "CASE-7")
        await pilot.press("f6")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        await _finished(pilot, app, 1)
        await wait_for(pilot, lambda: not (sftp_server.root / "data" / "CASE-7").exists())
        assert read_tree(local / "CASE-7") == expected


class SlowSFTP(asyncssh.SFTPServer):
    """Serves reads one at a time, 16 KiB every 20 ms (short reads are legal SFTP), so a
    transfer is still running when the test pauses it."""

    lock: asyncio.Lock | None = None

    async def read(self, file_obj, offset, size):  # type: ignore[override]
        if SlowSFTP.lock is None:
            SlowSFTP.lock = asyncio.Lock()
        async with SlowSFTP.lock:
            await asyncio.sleep(0.02)
            return super().read(file_obj, offset, min(size, 16384))


@pytest.fixture
async def slow_server(tmp_path, host_key, client_key, sftp_server):
    server = await start_sftp_server(
        tmp_path / "slow-remote",
        host_key=host_key,
        authorized_keys=[client_key],
        sftp_factory=SlowSFTP,
    )
    try:
        yield InProcessServer(server=server, client_key_path=sftp_server.client_key_path)
    finally:
        SlowSFTP.lock = None
        server.close()
        await server.wait_closed()


async def test_pause_and_resume_from_the_queue_panel(ferry_home, slow_server, tmp_path,
                                                     monkeypatch, through):
    payload = bytes(range(256)) * 4096 * 6  # 6 MiB: about 8 s at the server's pace
    make_tree(slow_server.root / "data", {"big.raw": payload})
    local = local_dir(tmp_path, monkeypatch)
    save_site(slow_server.site("slow", remote_dir="/data"))
    app = FerryApp(start_site="slow")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        _check_engine(app, through)
        await pilot.press("tab")
        await goto(pilot, screen.right, "big.raw")
        await pilot.press("f5")
        await wait_for(pilot, lambda: _jobs(app) and _jobs(app)[0].state == "running")
        await pilot.press("t")  # the queue panel, focused
        panel = screen.query_one(QueuePanel)
        assert panel.display
        await wait_for(pilot, lambda: panel.table.row_count == 1)
        await pilot.press("p")
        await wait_for(pilot, lambda: _jobs(app)[0].state == "paused")
        await wait_for(pilot, lambda: "paused" in str(panel.table.get_row_at(0)[-1]))
        summary = screen.query_one(QueueSummary)
        await wait_for(pilot, lambda: "1 paused" in summary.summary_text())
        await asyncio.sleep(0.5)
        assert _jobs(app)[0].state == "paused"
        assert not (local / "big.raw").exists()  # nothing under the final name while paused
        await pilot.press("p")
        await wait_for(pilot, lambda: _jobs(app)[0].state in ("queued", "running", "done"))
        await _finished(pilot, app, 1)
        assert _jobs(app)[0].state == "done"
        assert (local / "big.raw").read_bytes() == payload
        await wait_for(pilot, lambda: "done" in str(panel.table.get_row_at(0)[-1]))


async def test_failed_transfer_shows_its_error_in_full(ferry_home, sftp_server, tmp_path,
                                                       monkeypatch, through):
    make_tree(sftp_server.root / "data", {"doomed.txt": b"x" * 5000})
    local = local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = await browser(pilot)
        _check_engine(app, through)
        (local / "doomed.txt").mkdir()  # the destination name is taken by a folder
        (local / "doomed.txt" / "keep").write_bytes(b"mine")
        await pilot.press("tab")
        await goto(pilot, screen.right, "doomed.txt")
        await pilot.press("f5")
        await _finished(pilot, app, 1)
        job = _jobs(app)[0]
        assert job.state == "failed" and job.error
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        detail = panel.query_one(".queue-detail")
        await wait_for(pilot, lambda: "error:" in str(detail.render()))
        assert job.error.split(":")[0] in str(detail.render())
        await wait_for(pilot, lambda: any("Transfer failed" in n or "doomed" in n
                                          for n in notifications(app)))
    assert (local / "doomed.txt" / "keep").read_bytes() == b"mine"

