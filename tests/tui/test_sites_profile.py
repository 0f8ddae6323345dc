"""The server profile in the TUI: the Sites screen's Test dialog detects and shows it (the same
lines as ``ferry sites test``), and the site form picks a preset. Real matrix servers."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select, Static

from backend.sites.model import Site
from backend.sites.profile import load_profile, report_lines
from backend.sites.store import SiteStore
from tests.tui import save_site, wait_for_screen
from tui.app import FerryApp
from tui.dialogs import MessageDialog
from tui.dialogs.site_form import SiteFormDialog
from tui.screens.sites import SitesScreen


async def test_test_dialog_shows_exec_no_for_a_chroot_sftp_only_account(
        ferry_home: Path, server_of_kind) -> None:
    async with server_of_kind("chroot") as s:
        save_site(s.site("box"))
        app = FerryApp()
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_for_screen(pilot, SitesScreen)
            await pilot.press("t")
            dialog = await wait_for_screen(pilot, MessageDialog)
            shown = str(dialog.query_one("#message", Static).render())
        assert "cipher (client->server)" in shown
        assert "exec: no" in shown and "sftp connections only" in shown
        assert "posix-rename: yes" in shown and "writes: yes" in shown
        site = SiteStore().get("box")
        found = load_profile(site)
        assert found is not None and found.exec_usable is False  # remembered
        # the same lines the CLI prints
        for line in report_lines(site, found):
            assert line in shown
        assert not [p for p in s.root.iterdir() if p.name.startswith(".ferry-probe-")]


async def test_site_form_picks_a_server_profile(ferry_home: Path) -> None:
    save_site(Site(name="gw", host="s-1234.server.transfer.example", user="alice"))
    app = FerryApp()
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("e")
        form = await wait_for_screen(pilot, SiteFormDialog)
        select = form.query_one("#server_profile", Select)
        assert select.value == "auto"
        select.value = "aws-transfer-s3"
        await pilot.pause()
        await pilot.click("#save")
        await wait_for_screen(pilot, SitesScreen)
    site = SiteStore().get("gw")
    assert site.server_profile == "aws-transfer-s3"
    assert (site.host, site.user) == ("s-1234.server.transfer.example", "alice")
