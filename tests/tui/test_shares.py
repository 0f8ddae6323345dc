"""Sharing from the TUI against a real share service on 127.0.0.1: the Share… dialog on a local
and a remote file (links, password, copy, QR code, a real download), a policy cap shown inline,
and the Shares screen (live download notice, add recipient, extend, revoke -> 410)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import ServiceHandle, start_share_service, stop_share_service
from tests.tui import notifications, type_text, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, register_site
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog, MessageDialog, TextInputDialog
from tui.dialogs.qr import qr_matrix
from tui.dialogs.share import QrDialog, ShareDialog, ShareResultDialog
from tui.screens.shares import SharesScreen

BLACK = (0, 0, 0)


@pytest.fixture
async def service(
    ferry_home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ServiceHandle]:
    # the service answers an abandoned long poll only at its deadline; keep shutdown quick
    monkeypatch.setattr("tui.screens.shares.EVENT_WAIT", 1.0)
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    try:
        yield handle
    finally:
        await stop_share_service(handle)


async def download(url: str, password: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/download", data={"password": password}
    ) as resp:
        return resp.status, await resp.read()


def shown_modules(widget: Any) -> list[list[bool]]:
    """The QR modules as painted on screen: each cell is the top module in the foreground
    colour and the bottom one in the background colour of a half block."""
    from textual.geometry import Region

    width, height = widget.size
    rows: list[list[bool]] = []
    for strip in widget.render_lines(Region(0, 0, width, height)):
        top: list[bool] = []
        bottom: list[bool] = []
        for segment in strip:
            for char in segment.text:
                assert char == "▀"
                top.append(segment.style.color.triplet == BLACK)
                bottom.append(segment.style.bgcolor.triplet == BLACK)
        rows += [top, bottom]
    return rows


async def share_through_dialog(pilot: Any, recipients: str) -> ShareResultDialog:
    dialog = await wait_for_screen(pilot, ShareDialog)
    await type_text(pilot, recipients)
    error = dialog.query_one("#error")
    await pilot.press("ctrl+s")  # the same key that opened the dialog creates the share
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, ShareResultDialog) or str(error.render()),
        seconds=30,
    )
    assert isinstance(pilot.app.screen, ShareResultDialog), str(error.render())
    await pilot.pause()
    return pilot.app.screen  # type: ignore[return-value]


async def test_share_local_and_remote_files_from_the_browser(
    service, sftp_server, tmp_path, monkeypatch
):
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    local_data = os.urandom(700_000)
    (local / "scan.zip").write_bytes(local_data)
    remote_data = os.urandom(900_000)
    (sftp_server.root / "case-17.zip").write_bytes(remote_data)
    register_site(sftp_server, "lab")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await browser(pilot)
        await goto(pilot, screen.left, "scan.zip")
        await pilot.press("ctrl+s")
        result = await share_through_dialog(pilot, "alice@example.org, bob@example.org")
        items = dict(result.items)
        assert set(items) == {"alice@example.org", "bob@example.org", "password"}
        password = items["password"]
        # Enter on the first entry copies that recipient's link
        await pilot.press("enter")
        assert app.clipboard == items["alice@example.org"]
        status, body = await download(items["alice@example.org"], password)
        assert status == 200 and body == local_data
        # the QR code encodes the highlighted link
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, QrDialog))
        qr = app.screen
        url = items["alice@example.org"]
        assert shown_modules(qr.query_one("#qr"))[: len(qr_matrix(url))] == qr_matrix(url)
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)

        # a remote file: streamed from SFTP into the service
        await pilot.press("tab")
        await goto(pilot, screen.right, "case-17.zip")
        await pilot.press("ctrl+s")
        result = await share_through_dialog(pilot, "carol@example.org")
        items = dict(result.items)
        status, body = await download(items["carol@example.org"], items["password"])
        assert status == 200 and body == remote_data
        # the password entry copies the password
        await pilot.press("down", "enter")
        assert app.clipboard == items["password"]
    shares = await ShareClient().list()
    assert sorted(s["name"] for s in shares) == ["case-17.zip", "scan.zip"]


async def test_too_many_recipients_is_refused_inline_and_the_dialog_stays(
    service, tmp_path, monkeypatch
):
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    (local / "scan.zip").write_bytes(b"x" * 1000)
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("l")
        screen = await browser(pilot)
        await goto(pilot, screen.left, "scan.zip")
        await pilot.press("ctrl+s")
        dialog = await wait_for_screen(pilot, ShareDialog)
        await type_text(pilot, "r0@example.org,\n")
        dialog.query_one("#recipients").text += ",".join(f"r{i}@example.org" for i in range(1, 11))
        await pilot.press("ctrl+s")
        error = dialog.query_one("#error")
        await wait_for(pilot, lambda: "maximum of 10" in error.render().plain)
        assert "11 recipients" in error.render().plain
        assert app.screen is dialog
        # a bad address is caught before anything is sent
        dialog.query_one("#recipients").text = "not-an-address"
        await pilot.click("#share")  # the button works as well
        await wait_for(pilot, lambda: "invalid recipient" in error.render().plain)
        assert app.screen is dialog
    assert await ShareClient().list() == []


def _cells(screen: SharesScreen) -> list[list[str]]:
    table = screen.table
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_shares_screen_notices_downloads_adds_extends_and_revokes(service, tmp_path):
    src = tmp_path / "scan.zip"
    data = os.urandom(300_000)
    src.write_bytes(data)
    created = await ShareClient().create(
        local_file_source(src), name="scan.zip", size=len(data),
        recipients=["alice@example.org"], generate_password=True,
    )
    password, url = created["password"], created["links"][0]["url"]
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("S")
        screen = await wait_for_screen(pilot, SharesScreen)
        await wait_for(pilot, lambda: screen.loaded and screen.table.row_count == 1)
        row = _cells(screen)[0]
        assert row[0] == "scan.zip" and row[1] == "alice@example.org"
        assert row[2] == "in 2d 23h" and row[3] == "0" and row[4] == "active"

        status, body = await download(url, password)
        assert status == 200 and body == data
        await wait_for(
            pilot, lambda: "alice@example.org downloaded scan.zip" in notifications(app)
        )
        await wait_for(pilot, lambda: _cells(screen)[0][3] == "1")

        await pilot.press("a")
        await wait_for_screen(pilot, TextInputDialog)
        await type_text(pilot, "dave@example.org")
        await pilot.press("enter")
        message = await wait_for_screen(pilot, MessageDialog)
        new_url = message.copy_text
        assert new_url and new_url != url
        await pilot.press("escape")
        await wait_for(pilot, lambda: _cells(screen)[0][1] == "alice@example.org +1")
        status, body = await download(new_url, password)
        assert status == 200 and body == data

        before = (await ShareClient().show(created["share"]["id"]))["expires_at"]
        await pilot.press("e")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        dialog.query_one("#value").value = "1d"
        await pilot.press("enter")
        await wait_for(pilot, lambda: _cells(screen)[0][2].startswith("in 23h"))
        after = (await ShareClient().show(created["share"]["id"]))["expires_at"]
        assert after < before

        await pilot.press("x")
        confirm = await wait_for_screen(pilot, ConfirmDialog)
        assert confirm.focused.id == "cancel"  # a stray Enter revokes nothing
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: _cells(screen)[0][4] == "revoked")
        status, _ = await download(url, password)
        assert status == 410
