"""F5 asks when the destination already has a name (issue 14 friction; WinSCP's file-exists
dialog): the six policies and *apply to all*, fed to each job's ``on_conflict``. Before, a
same-size file was skipped silently and anything else replaced."""

from __future__ import annotations

from textual.widgets import OptionList

from tests.tui import wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir, make_tree, register_site
from tui.app import FerryApp
from tui.dialogs.conflict import ConflictDialog


def _done(app: FerryApp, count: int) -> bool:
    jobs = app.engine.jobs()
    return len(jobs) == count and all(j.state == "done" for j in jobs)


async def test_f5_asks_per_file_and_honours_each_answer(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"a.txt": b"old-a", "b.txt": b"old-b"})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"a.txt": b"new-a", "b.txt": b"new-b", "c.txt": b"new-c"})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        await browser(pilot)
        await pilot.press("asterisk", "f5")  # select all, copy
        dialog = await wait_for_screen(pilot, ConflictDialog)
        assert dialog.name_text == "a.txt" and dialog.others == 1
        # Skip is highlighted: a stray Enter would replace nothing
        assert dialog.query_one("#policies", OptionList).highlighted == 5
        await pilot.press("1")  # a.txt: overwrite (same size: before, it was kept silently)
        second = await wait_for_screen(pilot, ConflictDialog)
        assert second is not dialog and second.name_text == "b.txt"
        await pilot.press("6")  # b.txt: skip
        await wait_for(pilot, lambda: _done(app, 1))
        assert app.engine.jobs()[0].spec.on_conflict == "overwrite"
    data = sftp_server.root / "data"
    assert (data / "a.txt").read_bytes() == b"new-a"
    assert (data / "b.txt").read_bytes() == b"old-b"
    assert (data / "c.txt").read_bytes() == b"new-c"  # no clash: copied with the first job


async def test_apply_to_all_and_rename_keep_both(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"a.txt": b"old-a", "b.txt": b"old-b"})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"a.txt": b"new-a", "b.txt": b"new-b"})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        await browser(pilot)
        await pilot.press("asterisk", "f5")
        await wait_for_screen(pilot, ConflictDialog)
        await pilot.press("a", "5")  # apply to all, rename: sent together, handled in order
        await wait_for(pilot, lambda: _done(app, 1))
        assert not isinstance(app.screen, ConflictDialog)  # asked once
    data = sftp_server.root / "data"
    assert (data / "a.txt").read_bytes() == b"old-a"
    assert (data / "b.txt").read_bytes() == b"old-b"
    assert sorted(p.name for p in data.iterdir()) == [
        "a (1).txt", "a.txt", "b (1).txt", "b.txt"]


async def test_escape_cancels_the_copy_and_download_conflicts_ask_too(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    make_tree(sftp_server.root / "data", {"scan.dcm": b"server copy"})
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"scan.dcm": b"local"})
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "scan.dcm")
        await pilot.press("f5")
        await wait_for_screen(pilot, ConflictDialog)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.engine.jobs() == []
        await pilot.press("f5")
        await wait_for_screen(pilot, ConflictDialog)
        await pilot.press("3")  # overwrite if size differs
        await wait_for(pilot, lambda: _done(app, 1))
    assert (local / "scan.dcm").read_bytes() == b"server copy"
