"""Sharing friction (issue 14): links and public keys on one unwrapped line (a mouse selection
copies them whole), Copy says so inside the dialog (notifications wait until it closes), empty
recipients ask before an anonymous link is made, and a download notice names the recipient as
the Shares screen does (never the service's internal id)."""

from __future__ import annotations

import os

from backend.shares.client import ShareClient, local_file_source
from tests.tui import notifications, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, screen_lines
from tests.tui.test_shares import download, service  # noqa: F401  (the fixture)
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog, MessageDialog
from tui.dialogs.share import ShareDialog, ShareResultDialog
from tui.screens.shares import SharesScreen

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3xq6r0pP7mYQ0bWc2d9S8m3YxJ0u1kL9tQe4rB5nH2 "
       "ferry-key-for-the-provider@workstation")
URL = "http://127.0.0.1:8443/s/" + "Qm9vdHN0cmFwVG9rZW5Gb3JBTG9uZ0xpbmtUaGF0V3JhcHM"
RESULT = {
    "share": {"name": "scan.zip", "expires_at": "2025-11-24T10:00:00+00:00"},
    "links": [{"email": "alice@example.org", "url": URL}],
    "password": "correct-horse",
}


async def test_a_public_key_is_one_line_and_c_copies_it_with_feedback() -> None:
    app = FerryApp()
    async with app.run_test(size=(200, 50)) as pilot:
        await app.push_screen(MessageDialog("New key pair", ["Send this key:"], copy_text=KEY))
        dialog = await wait_for_screen(pilot, MessageDialog)
        assert len(KEY) > 76  # wider than a default dialog: wrapped before
        assert KEY in "\n".join(screen_lines(dialog.query_one("#copy"))).splitlines()[0]
        await pilot.press("c")
        assert app.clipboard == KEY
        assert "Copied" in str(dialog.query_one("#copied").render())


async def test_share_links_are_one_line_and_copy_says_so() -> None:
    app = FerryApp()
    async with app.run_test(size=(200, 50)) as pilot:
        await app.push_screen(ShareResultDialog(RESULT))
        dialog = await wait_for_screen(pilot, ShareResultDialog)
        lines = screen_lines(dialog.query_one("#links"))
        assert any(URL in line for line in lines), lines
        await pilot.press("c")
        assert app.clipboard == URL
        assert "Copied the link for alice@example.org" in str(
            dialog.query_one("#copied").render())


async def test_empty_recipients_ask_before_an_anonymous_link(
    service, tmp_path, monkeypatch  # noqa: F811
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    (local / "scan.zip").write_bytes(b"z" * 2000)
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        screen = await browser(pilot)
        await goto(pilot, screen.left, "scan.zip")
        await pilot.press("ctrl+s")
        await wait_for_screen(pilot, ShareDialog)
        await pilot.press("ctrl+s")  # no recipients typed
        confirm = await wait_for_screen(pilot, ConfirmDialog)
        assert "anonymous" in confirm.title_text
        await pilot.press("enter")  # Cancel (focused): back to the form, nothing created
        await wait_for_screen(pilot, ShareDialog)
        assert await ShareClient().list() == []
        await pilot.press("ctrl+s")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        result = await wait_for_screen(pilot, ShareResultDialog)
        assert [what for what, _ in result.items] == [
            "anyone with the link and the password", "password"]
    assert len(await ShareClient().list()) == 1


async def test_a_download_notice_names_the_recipient_as_the_shares_screen_does(
    service, tmp_path  # noqa: F811
) -> None:
    src = tmp_path / "scan.zip"
    data = os.urandom(50_000)
    src.write_bytes(data)
    created = await ShareClient().create(
        local_file_source(src), name="scan.zip", size=len(data), recipients=[],
        generate_password=True,
    )
    recipient_id = created["links"][0]["recipient_id"]
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("S")
        screen = await wait_for_screen(pilot, SharesScreen)
        await wait_for(pilot, lambda: screen.loaded and screen.table.row_count == 1)
        assert str(screen.table.get_row_at(0)[1]) == "(link)"
        status, _ = await download(created["links"][0]["url"], created["password"])
        assert status == 200
        await wait_for(pilot, lambda: any("downloaded scan.zip" in n
                                          for n in notifications(app)))
        notice = next(n for n in notifications(app) if "downloaded scan.zip" in n)
        assert recipient_id not in notice
        assert notice == "someone with the anonymous link (link) downloaded scan.zip"
