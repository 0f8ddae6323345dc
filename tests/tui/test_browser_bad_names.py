"""The browser on a real sshd folder holding a name that is not UTF-8: listed (not "Listing
failed"), shown with its ``\\xHH`` escapes, and renamed with F2 (issue 12, finding 7)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Input

from tests.tui import notifications, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir, names, register_site, screen_lines
from tui.app import FerryApp
from tui.dialogs import TextInputDialog

SHOWN = "bad\\xffname"


def _served(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    (folder / "series").mkdir(parents=True)
    (folder / "good.txt").write_bytes(b"good")
    fd = os.open(os.fsencode(folder) + b"/bad\xffname", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"latin-1")
    os.close(fd)
    return folder


async def test_the_pane_lists_a_folder_with_a_name_that_is_not_utf8_and_renames_it(
        ferry_home, sshd, tmp_path, monkeypatch) -> None:
    folder = _served(tmp_path)
    local_dir(tmp_path, monkeypatch)
    register_site(sshd, remote_dir=str(folder))
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        assert names(right) == ["series/", SHOWN, "good.txt"]
        assert not any("Unable to decode" in n for n in notifications(app))
        assert SHOWN in "\n".join(screen_lines(right.table))
        await pilot.press("tab")
        await goto(pilot, right, SHOWN)
        await pilot.press("f2")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        assert dialog.query_one(Input).value == SHOWN
        dialog.query_one(Input).value = "fixed.txt"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "fixed.txt" in names(right))
    assert (folder / "fixed.txt").read_bytes() == b"latin-1"
    assert sorted(os.listdir(os.fsencode(folder))) == [b"fixed.txt", b"good.txt", b"series"]
