"""Encryption at rest in the TUI, end to end on a real SFTP server: the site form's "Encrypt at
rest" switch creates the key in the vault (and says how to back it up), F5 uploads a
ciphertext-only container, F5 on it downloads the original; a private key file other users
may read is refused with its ``chmod 600`` fix in the form and in Test (``t``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from textual.widgets import Input, Static, Switch

from backend.crypto.header import MAGIC
from backend.sites.store import SiteStore
from backend.transfers.crypt import key_secret_name
from backend.vault import Vault
from tests.tui import notifications, save_site, type_text, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir
from tui.app import FerryApp
from tui.dialogs import MessageDialog, SecretDialog
from tui.dialogs.site_form import SiteFormDialog
from tui.screens.sites import SitesScreen

MASTER = "masterpw1"


def _done(app: FerryApp, count: int) -> bool:
    jobs = app.engine.jobs() if app.engine is not None else []
    return len(jobs) >= count and all(j.state in ("done", "failed", "cancelled") for j in jobs)


def _describe(app: FerryApp) -> str:
    return "\n".join(f"{j.id} {j.state} {j.error} "
                     + "; ".join(f"{f.state} {f.error}" for f in app.engine.files(j.id))
                     for j in app.engine.jobs())


async def test_encrypt_switch_then_upload_and_download_hold_no_plaintext_on_the_server(
    ferry_home: Path, sftp_server, tmp_path: Path, monkeypatch
) -> None:
    (sftp_server.root / "data").mkdir()
    local = local_dir(tmp_path, monkeypatch)
    data = os.urandom(300_000) + b"PATIENT NAME: DOE^JANE" + os.urandom(5000)
    (local / "scan.dcm").write_bytes(data)
    save_site(sftp_server.site("lab", remote_dir="/data"))
    app = FerryApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("e")
        form = await wait_for_screen(pilot, SiteFormDialog)
        switch = form.query_one("#encrypt_at_rest", Switch)
        assert switch.value is False
        switch.focus()
        await pilot.press("space")
        assert switch.value is True
        await pilot.click("#save")
        await wait_for_screen(pilot, SecretDialog)  # a new vault: its passphrase, twice
        await type_text(pilot, MASTER)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "again" in str(app.screen.query_one(Static).render()))
        await type_text(pilot, MASTER)
        await pilot.press("enter")
        advice = await wait_for_screen(pilot, MessageDialog)
        said = str(advice.query_one("#message", Static).render())
        assert "ferry vault export-key lab --to FILE" in said and "lost" in said
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)
        assert SiteStore().get("lab").encrypt_at_rest
        key = Vault.open(ferry_home / "vault.bin", MASTER).get(key_secret_name("lab"))
        assert key is not None and len(bytes.fromhex(key)) == 32

        await pilot.press("enter")  # open the browser on lab
        screen = await browser(pilot)
        await goto(pilot, screen.left, "scan.dcm")
        await pilot.press("f5")  # upload, encrypted on the way (old code: no key provider)
        await wait_for(pilot, lambda: _done(app, 1), seconds=60)
        assert app.engine.jobs()[0].state == "done", _describe(app)
        stored = sftp_server.root / "data" / "scan.dcm.ferry"
        assert stored.read_bytes()[:8] == MAGIC  # the Ferry container, not the plaintext
        assert b"DOE^JANE" not in stored.read_bytes()
        assert not (sftp_server.root / "data" / "scan.dcm").exists()

        (local / "scan.dcm").unlink()
        await pilot.press("ctrl+r")  # reload the pane
        await pilot.press("tab")
        await wait_for(pilot, lambda: "scan.dcm.ferry" in [e.name for e in screen.right.rows])
        await goto(pilot, screen.right, "scan.dcm.ferry")
        await pilot.press("f5")  # download, decrypted on the way
        await wait_for(pilot, lambda: _done(app, 2), seconds=60)
        assert all(j.state == "done" for j in app.engine.jobs()), _describe(app)
    assert (local / "scan.dcm").read_bytes() == data
    assert not (local / "scan.dcm.ferry").exists()


async def test_unprotected_key_is_refused_in_the_form_and_in_test(
    ferry_home: Path, sftp_server, tmp_path: Path
) -> None:
    key = tmp_path / "id_open"
    shutil.copyfile(sftp_server.client_key_path, key)
    key.chmod(0o600)
    save_site(sftp_server.site("lab", key_file=str(key)))
    key.chmod(0o644)
    app = FerryApp()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("t")  # Test: refused at connect time, with the fix
        await wait_for(pilot, lambda: any("chmod 600" in n for n in notifications(app)))
        shown = next(n for n in notifications(app) if "chmod 600" in n)
        assert "UNPROTECTED PRIVATE KEY FILE" in shown and f"chmod 600 {key}" in shown

        await pilot.press("e")
        form = await wait_for_screen(pilot, SiteFormDialog)
        form.query_one("#name", Input).focus()
        await pilot.press("enter")  # Save; the form checks the key file's mode too
        error = form.query_one("#error", Static)
        await wait_for(pilot, lambda: "chmod 600" in str(error.render()))
        assert isinstance(app.screen, SiteFormDialog)  # stays open, nothing saved
        assert app.focused is form.query_one("#key_file", Input)
