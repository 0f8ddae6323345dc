"""Friction an admin used to WinSCP / FileZilla / Midnight Commander hits (issue 14): every
confirmation focuses Cancel and names what it acts on; ``x`` asks before stopping a transfer
that is under way."""

from __future__ import annotations

from textual.widgets import Button, Static

from tests.tui import save_site, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir, make_tree, register_site
from tests.tui.test_queue import slow_server  # noqa: F401  (the fixture)
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog
from tui.widgets.queue_panel import QueuePanel


async def test_move_names_the_item_and_enter_cancels(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"CASE-7": {"a.dcm": b"x"}})
    local = local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "CASE-7")
        await pilot.press("f6")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        assert "Move CASE-7?" in str(dialog.query_one(".dialog-title", Static).render())
        assert app.focused is dialog.query_one("#cancel", Button)
        await pilot.press("enter")  # a stray Enter moves nothing
        await wait_for(pilot, lambda: app.screen is screen)
    assert (sftp_server.root / "data" / "CASE-7" / "a.dcm").exists()
    assert not (local / "CASE-7").exists()


async def test_x_asks_before_stopping_a_transfer_under_way(
    ferry_home, slow_server, tmp_path, monkeypatch  # noqa: F811
) -> None:
    # 32 MiB: ~40 s at the slow server's pace, so the transfer is still under way however
    # long a loaded machine takes for the steps below (it is stopped, never waited for)
    make_tree(slow_server.root / "data", {"big.raw": bytes(range(256)) * 4096 * 32})
    local_dir(tmp_path, monkeypatch)
    save_site(slow_server.site("slow", remote_dir="/data"))
    app = FerryApp(start_site="slow")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "big.raw")
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.engine.jobs() and app.engine.jobs()[0].bytes_done > 0)
        await pilot.press("t")
        panel = screen.query_one(QueuePanel)
        await wait_for(pilot, lambda: panel.table.row_count == 1)
        await pilot.press("x")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        assert "big.raw" in str(dialog.query_one(".dialog-title", Static).render())
        assert app.focused is dialog.query_one("#cancel", Button)
        await pilot.press("enter")  # Cancel: the transfer goes on
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.engine.jobs()[0].state in ("running", "done")
        await pilot.press("x")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.engine.jobs()[0].state == "cancelled")


async def test_w_shares_like_ctrl_s(ferry_home, sftp_server, tmp_path, monkeypatch) -> None:
    """ctrl+s is XOFF in many terminals: ``w`` opens Share… too."""
    from tui.dialogs.share import ShareDialog

    make_tree(sftp_server.root / "data", {"scan.zip": b"z" * 100})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "scan.zip")
        await pilot.press("w")
        await wait_for_screen(pilot, ShareDialog)
