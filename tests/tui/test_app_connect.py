"""FerryApp.connect_site end to end against a real in-process SFTP server: host-key dialog,
pinning, changed keys, the vault passphrase dialog."""

from __future__ import annotations

from pathlib import Path

import asyncssh
from textual.widgets import Button, Input

from backend import hostkeys
from backend.errors import FerryError
from backend.sites.model import secret_name
from backend.sites.store import SiteStore
from backend.vault import Vault
from tests.tui import (
    notifications,
    save_site,
    sites_toml,
    type_text,
    wait_for,
    wait_for_screen,
)
from tui.app import FerryApp
from tui.dialogs import HostKeyDialog, SecretDialog
from tui.screens.sites import SitesScreen


def _connect_in_background(app: FerryApp, name: str) -> dict:
    outcome: dict = {}

    async def run() -> None:
        try:
            site, conn = await app.connect_site(name)
        except FerryError as exc:
            outcome["error"] = exc
            return
        outcome["site"] = site
        try:
            async with conn.start_sftp_client() as sftp:
                outcome["listing"] = sorted(await sftp.listdir("."))
        finally:
            conn.close()

    app.run_worker(run(), exclusive=False)
    return outcome


async def test_accept_and_save_pins_the_host_key(ferry_home: Path, sftp_server) -> None:
    (sftp_server.root / "case-001").mkdir()
    save_site(sftp_server.site("lab", pinned=False))
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "lab")
        dialog = await wait_for_screen(pilot, HostKeyDialog)
        shown = str(dialog.query_one("#fingerprint").render())
        expected = hostkeys.fingerprint_of_line(sftp_server.host_key_line)
        assert expected in shown
        cancel = dialog.query_one("#cancel", Button)
        await wait_for(pilot, lambda: app.focused is cancel)  # Cancel is the default
        await pilot.click("#accept")
        await wait_for(pilot, lambda: outcome)
    assert "case-001" in outcome["listing"]
    assert sftp_server.host_key_line.split()[1] in sites_toml(ferry_home)
    assert SiteStore().get("lab").last_connected is not None


async def test_connect_once_does_not_pin(ferry_home: Path, sftp_server) -> None:
    save_site(sftp_server.site("lab", pinned=False))
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "lab")
        await wait_for_screen(pilot, HostKeyDialog)
        await pilot.click("#once")
        await wait_for(pilot, lambda: outcome)
    assert "listing" in outcome
    assert SiteStore().get("lab").host_keys == []


async def test_cancel_on_unknown_key_does_not_connect(ferry_home: Path, sftp_server) -> None:
    save_site(sftp_server.site("lab", pinned=False))
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "lab")
        await wait_for_screen(pilot, HostKeyDialog)
        await pilot.press("enter")  # Enter on the focused Cancel
        await wait_for(pilot, lambda: outcome)
        assert any("not accepted" in n for n in notifications(app))
    assert "listing" not in outcome
    assert SiteStore().get("lab").host_keys == []


async def test_changed_host_key_shows_warning_and_only_cancel(
    ferry_home: Path, sftp_server
) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    pinned = hostkeys.key_line(impostor)
    save_site(sftp_server.site("lab", pinned=False, host_keys=[pinned]))
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "lab")
        dialog = await wait_for_screen(pilot, HostKeyDialog)
        assert dialog.changed
        buttons = [b.id for b in dialog.query(Button)]
        assert buttons == ["cancel"]
        text = " ".join(str(w.render()) for w in dialog.query("Static"))
        assert "HOST KEY CHANGED" in text
        assert hostkeys.fingerprint(impostor) in text
        assert hostkeys.fingerprint_of_line(sftp_server.host_key_line) in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: outcome)
        assert any("HOST KEY CHANGED" in n for n in notifications(app))
    assert "listing" not in outcome
    assert SiteStore().get("lab").host_keys == [pinned]


async def test_password_site_unlocks_vault_with_masked_dialog(
    ferry_home: Path, sftp_server
) -> None:
    (sftp_server.root / "from-provider").mkdir()
    save_site(sftp_server.site("pw", user="pwuser", auth="password", key_file=None))
    vault = Vault.create(ferry_home / "vault.bin", "vault master pass")
    vault.set(secret_name("pw", "password"), "correct horse battery staple")
    vault.save()
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "pw")
        dialog = await wait_for_screen(pilot, SecretDialog)
        assert dialog.query_one(Input).password  # masked
        await type_text(pilot, "vault master pass")
        await pilot.press("enter")
        await wait_for(pilot, lambda: outcome)
    assert "from-provider" in outcome["listing"]


async def test_wrong_vault_passphrase_is_one_notification(ferry_home: Path, sftp_server) -> None:
    save_site(sftp_server.site("pw", user="pwuser", auth="password", key_file=None))
    vault = Vault.create(ferry_home / "vault.bin", "vault master pass")
    vault.set(secret_name("pw", "password"), "correct horse battery staple")
    vault.save()
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        outcome = _connect_in_background(app, "pw")
        await wait_for_screen(pilot, SecretDialog)
        await type_text(pilot, "not the passphrase")
        await pilot.press("enter")
        await wait_for(pilot, lambda: outcome)
        assert notifications(app) == [  # one line, with what to do (the error's hint)
            "wrong master passphrase or damaged vault "
            "(retype it, or check FERRY_VAULT_PASSPHRASE_FILE)"]
    assert "listing" not in outcome
