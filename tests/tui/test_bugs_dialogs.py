"""Dialogs keep what the user types (issue 14): every validation error — a name already taken,
the server refusing — keeps the F7 / F2 dialog open with the reason under the field, so the
keys typed next go into the field, not to the browser (bug 11)."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.tui import type_text, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir, make_tree, names, register_site
from tui.app import FerryApp
from tui.dialogs import TextInputDialog


def _error(dialog: TextInputDialog) -> str:
    return str(dialog.query_one("#error", Static).render())


async def test_f7_f2_existing_name_keeps_the_dialog_open(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    root = sftp_server.root / "data"
    make_tree(root, {"taken": {}, "file.txt": b"x"})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab", "f7")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        await type_text(pilot, "taken")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in _error(dialog))
        assert app.screen is dialog
        (root / "late").mkdir()  # made on the server after the listing: the server refuses
        field = dialog.query_one("#value", Input)
        field.value = ""
        await type_text(pilot, "late")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "late" in _error(dialog))
        assert app.screen is dialog
        await type_text(pilot, "r")  # typing goes on into the field
        assert field.value == "later"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        await wait_for(pilot, lambda: (root / "later").is_dir() and "later/" in names(screen.right))

        await goto(pilot, screen.right, "file.txt")
        await pilot.press("f2")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        field = dialog.query_one("#value", Input)
        field.value = ""
        await type_text(pilot, "taken")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in _error(dialog))
        assert app.screen is dialog
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
    assert (root / "file.txt").read_bytes() == b"x"
