"""Keys that arrive together (a laggy SSH link, a paste of keystrokes) are handled in order:
a key typed right after Tab, Enter or a key that opens a dialog goes where the focus is *after*
the earlier keys were handled (tui/app.py ``FerryApp`` holds keys while focus changes are
pending), and a key after ``q`` never reaches a half-closed app (issue 14, bugs 1 and 2).

The keys are posted to the app in one go, with no waiting between them, as a terminal delivers
several keystrokes read in one chunk.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui import wait_for, wait_for_screen
from tests.tui.browser_kit import browser, loaded, local_dir, make_tree, register_site
from tui.app import FerryApp
from tui.dialogs.site_form import SiteFormDialog
from tui.screens.sites import SitesScreen

_CHARS = {"tab": None, "enter": "\r", "space": " "}


def send_together(pilot: Pilot[Any], *keys: str) -> None:
    """Post every key to the app at once, as keys read from the terminal in one chunk."""
    for key in keys:
        char = _CHARS.get(key, key)
        pilot.app.post_message(events.Key(key, char))


async def test_keys_after_tab_go_to_the_next_field(ferry_home) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("a")
        form = await wait_for_screen(pilot, SiteFormDialog)
        send_together(pilot, "a", "b", "tab", "c", "d")
        await wait_for(pilot, lambda: form.query_one("#host", Input).value == "cd", seconds=5)
        assert form.query_one("#name", Input).value == "ab"
        assert app.focused is form.query_one("#host", Input)


async def test_key_that_opens_a_dialog_then_typing_fills_the_dialog(ferry_home) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        send_together(pilot, "a", "l", "a", "b", "tab", "h")
        form = await wait_for_screen(pilot, SiteFormDialog)
        await wait_for(pilot, lambda: form.query_one("#host", Input).value == "h", seconds=5)
        assert form.query_one("#name", Input).value == "lab"


async def test_tab_then_enter_opens_the_folder_in_the_new_pane(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"remote-dir": {"r.txt": b"r"}})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"local-dir": {"l.txt": b"l"}})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        assert screen.active is screen.left
        send_together(pilot, "tab", "enter")
        await loaded(pilot, screen.right, "/data/remote-dir")
        assert screen.active is screen.right
        assert screen.left.path == str(local)  # the old pane did not open its folder


async def test_q_then_a_quits_cleanly(ferry_home) -> None:
    """``qa`` typed quickly: the app quits; the ``a`` never opens a form on a closing app."""
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        send_together(pilot, "q", "a")
        await wait_for(pilot, lambda: app._exit)
        await pilot.pause(0.2)
    assert app.return_code == 0
    assert app._exception is None
