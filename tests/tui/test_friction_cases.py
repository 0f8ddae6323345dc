"""The case view's rough edges (issue 14, bug 8): a "results ready" row shows when its results
appeared before anyone fetched them; ``s`` never prefills a path on a site as the local study;
``a`` on a study-io site says why nothing happens; ``f`` fetches the highlighted case only
(``F`` every ready result)."""

from __future__ import annotations

import os
import time

from backend.cases.store import CaseStore
from backend.demo.samples import populate
from tests.tui import notifications, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, register_site
from tui.app import FerryApp
from tui.dialogs import TextInputDialog
from tui.screens.browser import BrowserScreen
from tui.screens.cases import CasesScreen


def _states(screen: CasesScreen) -> dict[str, str]:
    return {c.case_id: c.state for c in screen.cases}


def _since(screen: CasesScreen, case_id: str) -> str:
    row = [c.case_id for c in screen.cases].index(case_id)
    return str(screen.table.get_row_at(row)[2])


async def test_results_ready_rows_show_when_the_results_appeared(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    created = populate(sftp_server.root, large_file_mib=1)
    ready = created["studies"][0]
    stamp = time.mktime((2025, 11, 21, 10, 12, 0, 0, 0, -1))
    os.utime(sftp_server.root / "ai" / "output" / f"{ready}_out", (stamp, stamp))
    monkeypatch.chdir(tmp_path)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = CasesScreen("ai")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
        assert _states(screen)[ready] == "results ready"
        assert _since(screen, ready) == "2025-11-21 10:12"  # the folder's time, not "—"


async def test_send_is_not_prefilled_with_a_path_on_the_site(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    created = populate(sftp_server.root, large_file_mib=1)
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(BrowserScreen(None, left_site="ai"))  # the site on the left
        browse = await browser(pilot)
        def shown() -> list[str]:
            return [e.name for e in browse.left.rows] if browse.left.listed else []

        await wait_for(pilot, lambda: browse.left.source is not None and "input" in shown())
        await goto(pilot, browse.left, "input")
        browse.left.focus_table()  # the site's pane (the start-up focus is not under test)
        await wait_for(pilot, lambda: browse.left.table.has_focus)
        await pilot.press("enter")
        await wait_for(pilot, lambda: browse.left.path.endswith("/input")
                       and created["studies"][0] in shown())
        await goto(pilot, browse.left, created["studies"][0])
        await wait_for(pilot, lambda: browse._remote is not None)
        await pilot.press("c")
        screen = await wait_for_screen(pilot, CasesScreen)
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.press("s")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        # the local pane's folder (the right one), never /ai/input/<study> from the site
        assert dialog.query_one("#value").value == str(local)


async def test_archive_key_on_a_study_io_site_says_why(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    populate(sftp_server.root, large_file_mib=1)
    monkeypatch.chdir(tmp_path)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = CasesScreen("ai")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
        app.clear_notifications()
        await pilot.press("a")
        await wait_for(pilot, lambda: any("nothing to archive on ai" in n and "study-io" in n
                                          for n in notifications(app)))


async def test_f_fetches_the_highlighted_case_only(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    created = populate(sftp_server.root, large_file_mib=1)
    first, second = created["studies"][:2]  # both have results on the server
    monkeypatch.chdir(tmp_path)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = CasesScreen("ai")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
        row = [c.case_id for c in screen.cases].index(second)
        screen.table.move_cursor(row=row)
        await pilot.pause()
        await pilot.press("f")
        await wait_for(pilot, lambda: _states(screen)[second] == "downloaded", seconds=40)
        assert _states(screen)[first] == "results ready"
        record = CaseStore().get("ai", first)
        assert record is None or record.state != "downloaded"
        # f again on a downloaded case says so; F takes every ready result
        app.clear_notifications()
        await pilot.press("f")
        await wait_for(pilot, lambda: any("already downloaded" in n for n in notifications(app)))
        await pilot.press("F")
        await wait_for(pilot, lambda: _states(screen)[first] == "downloaded", seconds=40)
