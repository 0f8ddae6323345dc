"""Cosmetic bugs a new user sees first (issue 14, bug 13): the queue summary line on every
screen (it sat under the Footer on Sites), no stray letter after ``^p Palette``, readable
section names on the Help screen, and the current theme marked in the F9 list."""

from __future__ import annotations

from textual.command import CommandPalette

from tests.tui import wait_for, wait_for_screen
from tests.tui.browser_kit import browser, local_dir, register_site
from tests.tui.test_app_keys import _help_text
from tui.app import FerryApp
from tui.screens.help import HelpScreen
from tui.screens.sites import SitesScreen


async def test_summary_line_footer_help_and_theme_marker(
    ferry_home, sftp_server, tmp_path, monkeypatch
) -> None:
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server)
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await wait_for(pilot, lambda: "⇅" in app.screen.query_one("#status-bar").render().plain)
        summary = app.screen.query_one("#status-bar")
        footer = app.screen.query_one("Footer")
        assert summary.region.y + 1 == footer.region.y  # its own row, above the key bar

        await pilot.press("question_mark")
        text = _help_text(await wait_for_screen(pilot, HelpScreen))
        for internal in ("FilterInput", "FileInfo", "ShareResult", "\nFerry\n"):
            assert internal not in text
        assert "Browser: filter field" in text and "File info" in text
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)

        await pilot.press("f9")
        palette = await wait_for_screen(pilot, CommandPalette)
        options = palette.query("OptionList").first()
        await wait_for(pilot, lambda: "● ferry-dark" in "\n".join(
            str(options.get_option_at_index(i).prompt) for i in range(options.option_count)))
        await pilot.press("escape")

        await pilot.press("enter")
        await browser(pilot)
        bar = app.screen.query_one("Footer")
        palette_key = bar.query(".-command-palette").first()
        assert palette_key.region.right == 80  # reaches the last column: nothing shows through
