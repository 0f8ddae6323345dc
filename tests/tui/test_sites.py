"""The Sites screen end to end: the add/edit form with inline validation, delete with
confirmation, test connection (host-key dialog, negotiated algorithms), ssh_config import,
key generation and passwords going to the vault. Real in-process SFTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input, Select, Static, TextArea

from backend.sites.model import Site, secret_name
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
from tui.dialogs import ConfirmDialog, HostKeyDialog, MessageDialog, SecretDialog, TextInputDialog
from tui.dialogs.site_form import SiteFormDialog
from tui.screens.sites import SitesScreen


async def _fill(pilot, form: SiteFormDialog, **values: str) -> None:
    """Put each value into its form field as a user would: short ones typed key by key, long
    ones pasted (typing 60-character paths key by key only makes the test slow); Selects are
    picked directly."""
    for field, value in values.items():
        widget = form.query_one(f"#{field}")
        if isinstance(widget, Select):
            widget.value = value
            continue
        widget.focus()
        await pilot.pause()
        assert isinstance(widget, Input)
        widget.value = ""
        if len(value) <= 8:
            await type_text(pilot, value)
        else:
            widget.insert_text_at_cursor(value)


def _table_names(app: FerryApp) -> list[str]:
    table = app.screen.query_one("#sites", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def _error_text(form: SiteFormDialog) -> str:
    return str(form.query_one("#error", Static).render())


async def test_add_site_through_form_then_test_and_pin(ferry_home: Path, sftp_server) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("a")
        form = await wait_for_screen(pilot, SiteFormDialog)
        await _fill(
            pilot, form, name="lab", host=sftp_server.host, port=str(sftp_server.port),
            user="tester", auth="key", key_file=str(sftp_server.client_key_path),
        )
        await pilot.click("#save")
        await wait_for_screen(pilot, SitesScreen)
        assert _table_names(app) == ["lab"]
        saved = SiteStore().get("lab")
        assert (saved.host, saved.port, saved.auth) == (sftp_server.host, sftp_server.port, "key")
        assert saved.host_keys == []

        await pilot.press("t")
        await wait_for_screen(pilot, HostKeyDialog)
        await pilot.click("#accept")
        result = await wait_for_screen(pilot, MessageDialog)
        shown = str(result.query_one("#message", Static).render())
        assert "cipher (client->server)" in shown
        assert "chacha20-poly1305@openssh.com" in shown or "aes256-gcm@openssh.com" in shown
    assert sftp_server.host_key_line.split()[1] in sites_toml(ferry_home)


async def test_form_validation_errors_are_inline_and_nothing_is_saved(
    ferry_home: Path, tmp_path: Path
) -> None:
    save_site(Site(name="taken", host="10.0.0.1"))
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("a")
        form = await wait_for_screen(pilot, SiteFormDialog)

        await _fill(pilot, form, name="new", host="sftp.example.org", port="70000")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "port" in _error_text(form))
        assert "1-65535" in _error_text(form)
        assert form.query_one("#port", Input).has_class("invalid")

        await _fill(pilot, form, port="22", host="bad host!")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "invalid host" in _error_text(form))

        await _fill(pilot, form, host="sftp.example.org", auth="key",
                    key_file=str(tmp_path / "missing_key"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "does not exist" in _error_text(form))

        key = tmp_path / "id_test"
        key.write_text("not really a key but a readable file\n")
        key.chmod(0o600)  # a key open to others is refused first (backend/keys.py)
        await _fill(pilot, form, name="taken", key_file=str(key))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in _error_text(form))

        await _fill(pilot, form, name="bad name")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "invalid site name" in _error_text(form))
        assert app.screen is form  # still open, nothing lost
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)
    assert SiteStore().names() == ["taken"]


async def test_edit_site_changes_only_what_was_edited(ferry_home: Path) -> None:
    save_site(
        Site(name="idt", host="sftp.idt.example", port=22, user="alice", layout="inbox-outbox")
    )
    (ferry_home / "sites.toml").write_text(
        "# my comment\n" + (ferry_home / "sites.toml").read_text()
    )
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("e")
        form = await wait_for_screen(pilot, SiteFormDialog)
        assert form.query_one("#host", Input).value == "sftp.idt.example"
        await _fill(pilot, form, port="2222", name="idt2")
        await pilot.click("#save")
        await wait_for_screen(pilot, SitesScreen)
        assert _table_names(app) == ["idt2"]
    site = SiteStore().get("idt2")
    assert (site.port, site.user, site.layout) == (2222, "alice", "inbox-outbox")
    assert "# my comment" in sites_toml(ferry_home)


async def test_delete_asks_first_and_cancel_keeps_the_site(ferry_home: Path) -> None:
    save_site(Site(name="old", host="old.example", user="bob"))
    save_site(Site(name="keep", host="keep.example", user="bob"))
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("d")
        dialog = await wait_for_screen(pilot, ConfirmDialog)
        assert dialog.danger
        text = " ".join(str(s.render()) for s in dialog.query(Static))
        assert "bob@old.example:22" in text and "sites.toml" in text
        assert app.focused is dialog.query_one("#cancel", Button)
        await pilot.press("enter")  # the focused Cancel
        await wait_for_screen(pilot, SitesScreen)
        assert SiteStore().names() == ["old", "keep"]

        await pilot.press("d")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#confirm")
        await wait_for_screen(pilot, SitesScreen)
        await wait_for(pilot, lambda: _table_names(app) == ["keep"])
        assert "Deleted site old" in notifications(app)
    assert SiteStore().names() == ["keep"]


async def test_import_from_ssh_config_shows_imported_and_skipped(
    ferry_home: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host idt\n  HostName sftp.idt.example\n  User alice\n  Port 2022\n\n"
        "Host evil\n  HostName evil.example\n  ProxyCommand nc %h %p\n\n"
        "Host study\n  HostName 10.1.2.3\n"
    )
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("i")
        ask_path = await wait_for_screen(pilot, TextInputDialog)
        ask_path.query_one(Input).value = ""
        ask_path.query_one(Input).insert_text_at_cursor(str(config))
        await pilot.press("enter")
        report = await wait_for_screen(pilot, MessageDialog)
        text = str(report.query_one("#message", Static).render())
        assert "Imported 2 site(s)" in text
        assert "alice@sftp.idt.example:2022" in text
        assert "evil" in text and "ProxyCommand" in text
        await pilot.press("escape")
        await wait_for_screen(pilot, SitesScreen)
        assert sorted(_table_names(app)) == ["idt", "study"]
    assert SiteStore().get("idt").port == 2022


async def test_generate_key_shows_public_key_to_copy(ferry_home: Path) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("k")
        await wait_for_screen(pilot, TextInputDialog)
        await pilot.press("enter")  # default name
        await wait_for_screen(pilot, SecretDialog)
        await pilot.press("enter")  # no passphrase
        shown = await wait_for_screen(pilot, MessageDialog)
        public = shown.query_one("#copy", TextArea).text
    assert public.startswith("ssh-ed25519 ")
    pub_file = ferry_home / "keys" / "ferry_ed25519.pub"
    assert pub_file.read_text().strip() == public
    assert (ferry_home / "keys" / "ferry_ed25519").stat().st_mode & 0o777 == 0o600


async def test_password_typed_in_form_goes_only_to_the_vault(ferry_home: Path) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("a")
        form = await wait_for_screen(pilot, SiteFormDialog)
        assert form.query_one("#password", Input).password
        await _fill(pilot, form, name="pw", host="sftp.example.org", auth="password",
                    password="s3cret-site-password")
        await pilot.click("#save")
        await wait_for_screen(pilot, SecretDialog)  # new vault: passphrase twice
        await type_text(pilot, "masterpw1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "again" in str(app.screen.query_one(Static).render()))
        await type_text(pilot, "masterpw1")
        await pilot.press("enter")
        await wait_for_screen(pilot, SitesScreen)
        assert _table_names(app) == ["pw"]
    assert "s3cret" not in sites_toml(ferry_home)
    vault = Vault.open(ferry_home / "vault.bin", "masterpw1")
    assert vault.get(secret_name("pw", "password")) == "s3cret-site-password"


async def test_enter_opens_the_browser_on_the_site(ferry_home: Path, sftp_server) -> None:
    from tui.screens.browser import BrowserScreen

    save_site(sftp_server.site("lab"))
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        await pilot.press("enter")
        screen = await wait_for_screen(pilot, BrowserScreen)
        assert screen.site_name == "lab"
