"""The audit-log screen: newest first, filter as you type, full fields of the highlighted row,
and remote-supplied text shown literally."""

from __future__ import annotations

from textual.widgets import DataTable

from backend.audit import AuditLog
from tests.tui import type_text, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, local_dir, register_site
from tui.app import FerryApp
from tui.screens.audit import AuditScreen
from tui.screens.browser import BrowserScreen


def _events(screen: AuditScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(table.get_row_at(i)[2]) for i in range(table.row_count)]


async def test_audit_log_newest_first_and_filtered(ferry_home, sftp_server, tmp_path,
                                                   monkeypatch):
    log = AuditLog()
    log.append("transfer.done", site="lab", path="/data/CASE-1/a.dcm", sha256="ab" * 32)
    log.append("share.created", recipients=2, name="[red]report[/red].pdf")
    log.append("transfer.failed", site="lab", path="/data/CASE-2/b.dcm", error="timeout")
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server)
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(120, 40)) as pilot:
        await browser(pilot)
        await pilot.press("L")
        screen = await wait_for_screen(pilot, AuditScreen)
        await wait_for(pilot, lambda: len(_events(screen)) == 3)
        assert _events(screen) == ["transfer.failed", "share.created", "transfer.done"]
        detail = str(screen.query_one("#audit-detail").render())
        assert "error: timeout" in detail
        await pilot.press("down")
        await wait_for(pilot, lambda: "[red]report[/red].pdf" in
                       str(screen.query_one("#audit-detail").render()))
        await pilot.press("slash")
        await type_text(pilot, "case-1")
        await wait_for(pilot, lambda: _events(screen) == ["transfer.done"])
        await pilot.press("enter", "escape")
        await wait_for_screen(pilot, BrowserScreen)
