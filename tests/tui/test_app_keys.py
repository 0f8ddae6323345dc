"""App-level keys: help lists every binding (from the bindings themselves), the user keymap
in settings.toml remaps keys, the palette offers the screen's actions, quit confirms when
transfers run."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Static

from backend.sites.model import Site
from tests.tui import notifications, save_site, type_text, wait_for, wait_for_screen
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog
from tui.screens.help import HelpScreen
from tui.screens.sites import SitesScreen


def _help_text(screen: HelpScreen) -> str:
    from rich.console import Console

    console = Console(width=120, record=True)
    for section in screen.query(".help-section").results(Static):
        console.print(section.content)
    return console.export_text()


async def test_help_lists_every_binding_grouped_by_screen(ferry_home: Path) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("question_mark")
        help_screen = await wait_for_screen(pilot, HelpScreen)
        text = _help_text(help_screen)
        for binding in SitesScreen.BINDINGS + FerryApp.BINDINGS:
            assert binding.description in text  # type: ignore[union-attr]
            assert binding.id in text  # type: ignore[union-attr]
        assert text.index("Everywhere") < text.index("Sites")
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)


async def test_keymap_in_settings_remaps_keys(ferry_home: Path) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "settings.toml").write_text(
        '[keymap]\n"ferry.help" = "f2"\n"ferry.sites.add" = "n"\n'
    )
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("a")  # no longer bound
        await pilot.pause()
        assert isinstance(app.screen, SitesScreen)
        await pilot.press("question_mark")  # replaced by f2
        await pilot.pause()
        assert isinstance(app.screen, SitesScreen)
        await pilot.press("f2")
        help_screen = await wait_for_screen(pilot, HelpScreen)
        text = _help_text(help_screen)
        assert "f2 " in text and "ferry.help" in text
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("n")
        from tui.dialogs.site_form import SiteFormDialog

        await wait_for_screen(pilot, SiteFormDialog)


async def test_broken_settings_file_is_reported_and_left_alone(ferry_home: Path) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "settings.toml").write_text("theme = \n")
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        shown = notifications(app)
        assert len(shown) == 1 and "invalid TOML" in shown[0]
        app.theme = "ferry-light"
        await pilot.pause()
    assert (ferry_home / "settings.toml").read_text() == "theme = \n"


async def test_palette_offers_the_screen_actions(ferry_home: Path) -> None:
    save_site(Site(name="old", host="old.example"))
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("ctrl+p")
        await wait_for_screen(pilot, CommandPalette)
        await type_text(pilot, "Delete")
        await pilot.pause(0.3)
        await pilot.press("enter")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        assert "old" in dialog.title_text


async def test_quit_asks_while_a_transfer_is_queued_or_running(
    ferry_home: Path, tmp_path: Path
) -> None:
    """A server that accepts TCP but never speaks SSH keeps the job waiting to connect."""
    import asyncio

    from backend.transfers import JobSpec

    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    save_site(Site(name="slow", host="127.0.0.1", port=port, user="tester"))
    try:
        app = FerryApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for_screen(pilot, SitesScreen)
            assert app.engine is not None
            await app.engine.submit(
                JobSpec("get", "slow", ["/case-001.zip"], str(tmp_path / "downloads"))
            )
            await wait_for(pilot, lambda: app.running_transfers() == 1)
            await pilot.press("q")
            dialog = await wait_for_screen(pilot, ConfirmDialog)
            assert "1 transfer(s) are still running or queued." in dialog.lines
            await pilot.press("enter")  # Cancel has the focus: Ferry stays open
            await wait_for_screen(pilot, SitesScreen)
            assert app.is_running
            await pilot.press("q")
            await wait_for_screen(pilot, ConfirmDialog)
            await pilot.click("#confirm")
            await wait_for(pilot, lambda: not app.is_running)
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_quit_without_transfers_does_not_ask(ferry_home: Path) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
