"""Both browser panes on sites: open a site in the focused pane with the picker (o), copy a
folder from site A to site B with F5 (two engine jobs in the queue), move between sites
(originals deleted after both legs), and local-to-local copies refused."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from backend.demo.server import start_sftp_server
from backend.sources import LocalSource, RemoteSource
from tests.servers import InProcessServer
from tests.tui import notifications, wait_for, wait_for_screen
from tests.tui.browser_kit import (
    browser,
    goto,
    loaded,
    local_dir,
    make_tree,
    read_tree,
    register_site,
    screen_lines,
)
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog
from tui.dialogs.site_picker import SitePickerDialog
from tui.widgets.file_pane import FilePane
from tui.widgets.path_bar import PathBar
from tui.widgets.queue_panel import QueuePanel

CASE = {
    "CASE-3": {
        "report.txt": b"no acute abnormality\n",
        "series": {f"IM{i:04d}.dcm": bytes([i]) * (900 + i * 53) for i in range(4)},
        "empty": {},
    }
}


@pytest.fixture
async def server_b(tmp_path, host_key, client_key, sftp_server):
    """A second in-process SFTP server (site B), rooted in its own folder."""
    server = await start_sftp_server(tmp_path / "remote-b", host_key=host_key,
                                     authorized_keys=[client_key])
    try:
        yield InProcessServer(server=server, client_key_path=sftp_server.client_key_path)
    finally:
        server.close()
        await server.wait_closed()


def _jobs(app) -> list:
    return app.engine.jobs() if app.engine is not None else []


def _describe(app) -> str:
    lines = []
    for job in _jobs(app):
        lines.append(f"{job.id} {job.direction} {job.site} {job.label} {job.state} {job.error}")
    return "\n".join(lines)


async def _on_site(pilot, pane: FilePane, name: str) -> None:
    await wait_for(pilot, lambda: isinstance(pane.source, RemoteSource)
                   and pane.source.site.name == name and pane.listed)
    await pilot.pause()


async def _pick(pilot, choice: str) -> None:
    """In the open site picker, highlight ``choice`` (a site name or 'Local files'), Enter."""
    dialog = await wait_for_screen(pilot, SitePickerDialog)
    options = dialog.query_one(OptionList)
    labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    index = next(i for i, label in enumerate(labels) if label.split()[0] == choice.split()[0])
    while options.highlighted != index:
        await pilot.press("down")
    await pilot.press("enter")


async def test_copy_a_folder_from_one_site_to_another(ferry_home, sftp_server, server_b,
                                                      tmp_path, monkeypatch):
    make_tree(sftp_server.root / "data", CASE)
    (server_b.root / "inbox").mkdir(parents=True)
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, "site-a", remote_dir="/data")
    register_site(server_b, "site-b", remote_dir="/inbox")
    app = FerryApp(start_site="site-b")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        assert isinstance(screen.left.source, LocalSource)
        await pilot.press("o")  # the left pane is focused: open site A in it
        await _pick(pilot, "site-a")
        await _on_site(pilot, screen.left, "site-a")
        assert screen.left.path == "/data"
        bars = [" ".join(screen_lines(p.query_one(PathBar))) for p in (screen.left, screen.right)]
        assert "site-a" in bars[0] and "/data" in bars[0]
        assert "site-b" in bars[1] and "/inbox" in bars[1]

        await goto(pilot, screen.left, "CASE-3")
        await pilot.press("space")  # select the folder
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(_jobs(app)) == 2
                       and all(j.state == "done" for j in _jobs(app)), seconds=60)
        jobs = sorted(_jobs(app), key=lambda j: j.id)
        assert [(j.direction, j.site) for j in jobs] == [("get", "site-a"), ("put", "site-b")]
        assert read_tree(server_b.root / "inbox" / "CASE-3") == read_tree(
            sftp_server.root / "data" / "CASE-3")
        assert (server_b.root / "inbox" / "CASE-3" / "empty").is_dir()
        assert (sftp_server.root / "data" / "CASE-3").is_dir()  # a copy keeps the original
        await wait_for(pilot, lambda: any("file(s) copied" in n for n in notifications(app)))
        await wait_for(pilot, lambda: "CASE-3" in [e.name for e in screen.right.entries])

        await pilot.press("t")  # the queue panel lists both legs
        panel = screen.query_one(QueuePanel)
        await wait_for(pilot, lambda: panel.table.row_count == 2)
        rows = " ".join(str(c) for i in range(2) for c in panel.table.get_row_at(i))
        assert "site-a" in rows and "site-b" in rows


async def test_move_between_sites_deletes_the_original_after_both_legs(
        ferry_home, sftp_server, server_b, tmp_path, monkeypatch):
    make_tree(sftp_server.root / "data", CASE)
    expected = read_tree(sftp_server.root / "data" / "CASE-3")
    (server_b.root / "out").mkdir(parents=True)
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, "site-a", remote_dir="/data")
    register_site(server_b, "site-b")
    app = FerryApp()
    async with app.run_test(size=(120, 40)) as pilot:
        from tui.screens.browser import BrowserScreen

        app.push_screen(BrowserScreen("site-b", left_site="site-a"))  # programmatic start
        await wait_for_screen(pilot, BrowserScreen)
        screen = await browser(pilot)
        await _on_site(pilot, screen.left, "site-a")
        await _on_site(pilot, screen.right, "site-b")
        await pilot.press("tab")
        await goto(pilot, screen.right, "out")
        await pilot.press("enter")  # into a folder on B as the destination
        await loaded(pilot, screen.right, "/out")
        await pilot.press("tab")
        await goto(pilot, screen.left, "CASE-3")
        await pilot.press("f6")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: not (sftp_server.root / "data" / "CASE-3").exists(),
                       seconds=60)
        assert [j.state for j in _jobs(app)] == ["done", "done"], _describe(app)
        assert read_tree(server_b.root / "out" / "CASE-3") == expected
        await wait_for(pilot, lambda: "CASE-3" not in [e.name for e in screen.left.entries])


async def test_local_to_local_copy_is_refused_and_a_pane_can_go_back_to_local(
        ferry_home, sftp_server, tmp_path, monkeypatch):
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"study.zip": b"zip"})
    register_site(sftp_server, "site-a")
    app = FerryApp(start_site="site-a")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab", "o")  # the right pane back to local files
        await _pick(pilot, "Local files")
        await wait_for(pilot, lambda: isinstance(screen.right.source, LocalSource)
                       and screen.right.listed)
        await pilot.press("tab")
        await goto(pilot, screen.left, "study.zip")
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("both panes show local files" in n
                                          for n in notifications(app)))
        assert _jobs(app) == []
        assert sorted(p.name for p in local.iterdir()) == ["study.zip"]
