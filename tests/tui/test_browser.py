"""The dual-pane browser end to end against the in-process SFTP server: navigation, filter,
hidden files, sort, selection, mkdir/rename/delete with confirmation, viewer, file info,
hostile names, and a 10,000-entry folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from textual.widgets import Button, Input, TextArea

from tests.tui import notifications, type_text, wait_for, wait_for_screen
from tests.tui.browser_kit import (
    browser,
    goto,
    loaded,
    local_dir,
    make_tree,
    names,
    register_site,
    screen_lines,
)
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog, TextInputDialog
from tui.screens.browser import BrowserScreen
from tui.screens.viewer import FileInfoScreen, ViewerScreen


def _remote(server, spec: dict) -> Path:
    root = server.root / "data"
    make_tree(root, spec)
    return root


async def test_browse_into_folders_and_back(ferry_home, sftp_server, tmp_path, monkeypatch):
    _remote(sftp_server, {"cases": {"CASE-1": {"a.dcm": b"x"}, "CASE-2": {}}, "notes.txt": b"n"})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        assert right.path == "/data"
        assert names(right) == ["cases/", "notes.txt"]
        await pilot.press("tab")
        assert screen.active is right
        await pilot.press("enter")  # into cases/
        await loaded(pilot, right, "/data/cases")
        assert names(right) == ["CASE-1/", "CASE-2/"]
        await pilot.press("l")  # open CASE-1 with vi keys
        await loaded(pilot, right, "/data/cases/CASE-1")
        assert names(right) == ["a.dcm"]
        await pilot.press("backspace")
        await loaded(pilot, right, "/data/cases")
        assert right.current_entry().name == "CASE-1"  # the cursor returns to where we were
        await pilot.press("h")
        await loaded(pilot, right, "/data")
        await pilot.press("j", "tilde")
        await loaded(pilot, right, "/data")


async def test_filter_hidden_toggle_and_sort(ferry_home, sftp_server, tmp_path, monkeypatch):
    _remote(
        sftp_server,
        {"alpha.txt": b"a" * 300, "beta.log": b"b" * 10, "gamma.txt": b"c" * 2000, ".secret": b"s"},
    )
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        await pilot.press("tab")
        assert names(right) == ["alpha.txt", "beta.log", "gamma.txt"]  # hidden files hidden
        await pilot.press("full_stop")
        assert names(right) == [".secret", "alpha.txt", "beta.log", "gamma.txt"]
        await pilot.press("full_stop")
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await type_text(pilot, "txt")
        assert names(right) == ["alpha.txt", "gamma.txt"]
        await pilot.press("enter")  # keep the filter, back to the list
        assert app.focused is right.table
        assert names(right) == ["alpha.txt", "gamma.txt"]
        await pilot.press("slash", "escape")  # Escape clears it
        assert names(right) == ["alpha.txt", "beta.log", "gamma.txt"]
        await pilot.press("s")  # sort by size
        assert names(right) == ["beta.log", "alpha.txt", "gamma.txt"]
        await pilot.press("S")  # reversed
        assert names(right) == ["gamma.txt", "alpha.txt", "beta.log"]


async def test_hostile_names_are_shown_literally(ferry_home, sftp_server, tmp_path, monkeypatch):
    hostile = "[bold]x[red].txt"
    _remote(sftp_server, {hostile: b"x", "[link=https:evil]y[link]": b"y"})
    local = local_dir(tmp_path, monkeypatch)
    (local / "esc\x1b[31mred").write_bytes(b"z")
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        shown = names(screen.right)
        assert hostile in shown
        assert "[link=https:evil]y[link]" in shown
        assert names(screen.left) == ["esc?[31mred"]  # the escape character never reaches
        shown_lines = "\n".join(screen_lines(screen.right.table))
        assert "[bold]x[red].txt" in shown_lines
        assert "esc?[31mred" in "\n".join(screen_lines(screen.left.table))


async def test_mkdir_and_rename_on_the_site(ferry_home, sftp_server, tmp_path, monkeypatch):
    root = _remote(sftp_server, {"old.txt": b"keep me"})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab", "f7")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        await type_text(pilot, "CASE-9")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "CASE-9/" in names(screen.right))
        assert (root / "CASE-9").is_dir()
        await goto(pilot, screen.right, "old.txt")
        await pilot.press("f2")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        dialog.query_one(Input).value = "bad/name"
        await pilot.press("enter")
        assert isinstance(app.screen, TextInputDialog)  # refused inline, dialog stays
        dialog.query_one(Input).value = "new.txt"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "new.txt" in names(screen.right))
        assert (root / "new.txt").read_bytes() == b"keep me"
        assert not (root / "old.txt").exists()


async def test_delete_asks_and_cancel_keeps_files(ferry_home, sftp_server, tmp_path, monkeypatch):
    root = _remote(sftp_server, {"CASE-1": {"a.dcm": b"1", "sub": {"b.dcm": b"2"}}, "x.txt": b""})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "CASE-1")
        await pilot.press("f8")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        listed = "\n".join(dialog.lines)
        assert "CASE-1/sub/b.dcm" in listed and "CASE-1/a.dcm" in listed
        assert "2 file(s) and 2 folder(s)" in listed
        assert app.focused is dialog.query_one("#cancel", Button)  # a stray Enter cancels
        await pilot.press("enter")
        await wait_for_screen(pilot, BrowserScreen)
        assert (root / "CASE-1" / "sub" / "b.dcm").exists()
        await pilot.press("delete")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: names(screen.right) == ["x.txt"])
        assert not (root / "CASE-1").exists()
        assert (root / "x.txt").exists()


async def test_delete_of_selected_local_files(ferry_home, sftp_server, tmp_path, monkeypatch):
    _remote(sftp_server, {})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"})
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"must survive")
    (local / "link").symlink_to(outside)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await goto(pilot, screen.left, "a.txt")
        await pilot.press("space", "down", "space")  # select a.txt and c.txt
        assert screen.left.marked == {"a.txt", "c.txt"}
        await goto(pilot, screen.left, "link")
        await pilot.press("space")
        await pilot.press("f8")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        assert [line.strip() for line in dialog.lines[1:4]] == ["a.txt", "c.txt", "link"]
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: names(screen.left) == ["b.txt"])
    assert outside.read_bytes() == b"must survive"  # the link went, never its target


async def test_cursor_and_selection_survive_a_terminal_resize(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    _remote(sftp_server, {})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {f"f{i}.txt": b"x" for i in range(6)})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await goto(pilot, screen.left, "f3.txt")
        await pilot.press("space")  # marks f3.txt, cursor on f4.txt
        for size in ((120, 30), (60, 24)):  # wider and narrower: the columns are re-planned
            before = screen.left.spec
            await pilot.resize_terminal(*size)
            await wait_for(pilot, lambda before=before: screen.left.spec != before)
            await pilot.pause()
            entry = screen.left.current_entry()
            assert entry is not None and entry.name == "f4.txt", (
                size, screen.left.table.cursor_row, len(screen.left.rows))
            assert screen.left.marked == {"f3.txt"}
        await pilot.press("space")
        assert screen.left.marked == {"f3.txt", "f4.txt"}


async def test_viewer_shows_truncation_note_and_hex(ferry_home, sftp_server, tmp_path, monkeypatch):
    big = b"".join(b"line %06d\n" % i for i in range(30000))  # 360,000 bytes
    _remote(sftp_server, {"big.txt": big, "blob.bin": bytes(range(256)) * 4})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "big.txt")
        await pilot.press("enter")
        viewer = await wait_for_screen(pilot, ViewerScreen)
        await wait_for(pilot, lambda: viewer.query(TextArea))
        assert "truncated: showing the first 256 KiB of 360,000 bytes" in viewer.note
        text = viewer.query_one(TextArea).text
        assert text.startswith("line 000000\n")
        assert len(text.encode()) <= 256 * 1024
        await pilot.press("escape")
        await wait_for_screen(pilot, BrowserScreen)
        await goto(pilot, screen.right, "blob.bin")
        await pilot.press("v")
        viewer = await wait_for_screen(pilot, ViewerScreen)
        await wait_for(pilot, lambda: viewer.query(TextArea))
        assert viewer.note.startswith("binary file")
        assert viewer.query_one(TextArea).text.startswith("00000000  00 01 02 03")


async def test_file_info_computes_sha256_on_request(ferry_home, sftp_server, tmp_path, monkeypatch):
    data = b"case payload\n" * 1000
    _remote(sftp_server, {"scan.dcm": data})
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "scan.dcm")
        await pilot.press("i")
        info = await wait_for_screen(pilot, FileInfoScreen)
        assert info.digest is None  # nothing is read until asked
        await pilot.press("c")
        await wait_for(pilot, lambda: info.digest is not None)
        assert info.digest == hashlib.sha256(data).hexdigest()


async def test_ten_thousand_entries_render_and_scroll(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    root = sftp_server.root / "data" / "many"
    root.mkdir(parents=True)
    for i in range(10_000):
        (root / f"IM{i:05d}.dcm").touch()
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data/many")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        assert right.table.row_count == 10_000
        await pilot.press("tab", "end")
        await pilot.pause()
        assert right.current_entry().name == "IM09999.dcm"
        assert any("IM09999.dcm" in line for line in screen_lines(right.table))


async def test_unreachable_site_leaves_local_pane_usable(ferry_home, sftp_server, tmp_path,
                                                        monkeypatch):
    local = local_dir(tmp_path, monkeypatch)
    (local / "here.txt").write_bytes(b"h")
    register_site(sftp_server, pinned=False)  # unknown key, and no prompt answers yes
    sftp_server.server.close()
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, BrowserScreen))
        screen = app.screen
        await loaded(pilot, screen.left, str(local))
        await wait_for(pilot, lambda: any("lab" in n or "connect" in n for n in notifications(app)))
        assert names(screen.left) == ["here.txt"]
