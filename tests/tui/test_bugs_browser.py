"""Browser and Sites-list details a new user hits (issue 14): the filter field shows what is
typed on one row (bug 5); Home / End / g / G in the Sites list and the queue panel (bug 6)."""

from __future__ import annotations

from tests.tui import type_text, wait_for
from tests.tui.browser_kit import browser, local_dir, make_tree, register_site, screen_lines
from tui.app import FerryApp
from tui.widgets.file_pane import FilterInput


async def test_filter_field_is_one_row_and_shows_the_text(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"alpha.txt": b"a", "beta.log": b"b"})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab", "slash")
        await type_text(pilot, "txt")
        field = screen.right.query_one(FilterInput)
        await wait_for(pilot, lambda: field.value == "txt")
        await pilot.pause()
        assert field.size.height == 1
        assert "txt" in "".join(screen_lines(field))


async def test_home_end_g_in_the_sites_list_and_the_queue(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    from tests.tui import wait_for_screen
    from tui.screens.browser import BrowserScreen
    from tui.screens.sites import SitesScreen
    from tui.widgets.queue_panel import QueuePanel

    for name in ("a-site", "b-site", "lab"):
        register_site(sftp_server, name, remote_dir="/data")
    make_tree(sftp_server.root / "data", {f"f{i}.txt": b"x" * i for i in range(1, 4)})
    local_dir(tmp_path, monkeypatch)
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        sites = await wait_for_screen(pilot, SitesScreen)
        table = sites.table
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("G")
        assert table.cursor_row == 2
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("G", "enter")  # lab
        screen = await browser(pilot)
        assert isinstance(screen, BrowserScreen)
        await pilot.press("tab")
        for _ in range(3):  # three one-file jobs
            await pilot.press("f5", "down")
        await wait_for(pilot, lambda: len(app.engine.jobs()) == 3
                       and all(j.state == "done" for j in app.engine.jobs()))
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        await wait_for(pilot, lambda: panel.table.row_count == 3)
        panel.table.move_cursor(row=1)
        await pilot.press("end")
        assert panel.table.cursor_row == 2
        await pilot.press("home")
        assert panel.table.cursor_row == 0
        await pilot.press("G")
        assert panel.table.cursor_row == 2
        await pilot.press("g")
        assert panel.table.cursor_row == 0


async def test_case_site_at_80x24_shows_size_and_whole_case_names(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    """Bug 14: the remote inbox shows Name, State and Size; local case folders are not cut to
    ``CASE-20261118-…`` (the date column gives way to the name)."""
    from backend.demo.samples import populate
    from tests.tui.browser_kit import goto, loaded, names

    populate(sftp_server.root, large_file_mib=1)
    local = local_dir(tmp_path, monkeypatch)
    for case in ("CASE-20261118-0031", "CASE-20261119-0032"):
        (local / case).mkdir()
    register_site(sftp_server, "demo", remote_dir="/idt", layout="inbox-outbox")
    app = FerryApp(start_site="demo")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "From_IDT")
        await pilot.press("enter")
        await loaded(pilot, screen.right, "/idt/From_IDT")
        assert screen.right.spec.keys == ["name", "state", "size"]
        shown = "\n".join(screen_lines(screen.right.table))
        assert "CASE-20261118-0031/" in shown and "<DIR>" in shown
        assert names(screen.left)[:2] == ["CASE-20261118-0031/", "CASE-20261119-0032/"]
        assert "CASE-20261119-0032/" in "\n".join(screen_lines(screen.left.table))
