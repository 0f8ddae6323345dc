"""A keymap in settings.toml never silently takes a key from another action (issue 14, bug 9):
the docs' old example ``"ferry.browser.copy" = "f5,c"`` made ``c`` copy instead of opening
Cases. Such a key is refused, unknown ids are named, all in one notification."""

from __future__ import annotations

from tests.tui import notifications, wait_for
from tests.tui.browser_kit import browser, goto, local_dir, make_tree, register_site
from tui.app import FerryApp


async def test_conflicting_and_unknown_keymap_entries_are_reported_once(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "settings.toml").write_text(
        '[keymap]\n"ferry.browser.copy" = "f5,c"\n"ferry.browser.cpoy" = "y"\n'
        '"ferry.browser.view" = "f3,z"\n'
    )
    make_tree(sftp_server.root / "data", {"inbox.txt": b"x" * 10})
    local = local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await browser(pilot)
        shown = [n for n in notifications(app) if "keymap" in n]
        assert len(shown) == 1, notifications(app)
        assert '"c" for ferry.browser.copy' in shown[0] and "ferry.browser.cases" in shown[0]
        assert "'ferry.browser.cpoy'" in shown[0]
        await pilot.press("tab")
        await goto(pilot, screen.right, "inbox.txt")
        await pilot.press("c")  # still Cases (not a case site: it says so), never a copy
        await pilot.pause(0.3)
        assert app.engine.jobs() == []
        await pilot.press("z")  # a free key the user added: applied
        from tui.screens.viewer import ViewerScreen

        await wait_for(pilot, lambda: isinstance(app.screen, ViewerScreen))
        await pilot.press("escape")
        await pilot.press("f5")  # the copy's other key works
        await wait_for(pilot, lambda: (local / "inbox.txt").exists())
