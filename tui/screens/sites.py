"""The Sites screen: the saved sites, and everything done to them.

A table of sites (name, user@host:port, layout, last connected) with add / edit / delete,
test connection (negotiated algorithms and the detected server profile, through the same
:func:`backend.sites.profile.redetect` / ``report_lines`` as ``ferry sites test``), import
from an OpenSSH config, key generation, and Enter to open the browser on a site. All work
goes through the backend (SiteStore, vault, ssh, sshconfig, keys, server profiles); this module
only asks and shows.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from backend import atrest, ssh
from backend.errors import FerryError
from backend.keys import generate_keypair
from backend.sites import profile as server_profile
from backend.sites.model import Site, secret_name
from backend.sites.sshconfig import import_into_store, parse_ssh_config
from backend.vault import Vault
from tui.dialogs import ConfirmDialog, MessageDialog, SecretDialog, TextInputDialog, ask
from tui.dialogs.site_form import SiteFormDialog, SiteFormResult
from tui.dialogs.text import plain
from tui.screens import status_bar
from tui.services import ferry
from tui.widgets.list_table import ListTable


def _when(stamp: str | None) -> str:
    if not stamp:
        return "never"
    return stamp.replace("T", " ")[:16]


class SitesScreen(Screen[None]):
    """Saved sites. Enter opens the browser on the highlighted one."""

    _key_created: str | None = None  # a site whose at-rest key the last save created

    HELP_TITLE = "Sites"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="ferry.sites.open"),
        Binding("a", "add", "Add", id="ferry.sites.add"),
        Binding("e", "edit", "Edit", id="ferry.sites.edit"),
        Binding("d,delete", "delete", "Delete", id="ferry.sites.delete"),
        Binding("t", "test", "Test", id="ferry.sites.test"),
        Binding("i", "import_ssh_config", "Import ssh config", id="ferry.sites.import",
                show=False),
        Binding("k", "keygen", "Generate key", id="ferry.sites.keygen", show=False),
        Binding("l", "local", "Local files", id="ferry.sites.local", show=False),
        Binding("r", "reload", "Reload", id="ferry.sites.reload", show=False),
        Binding("S", "shares", "Shares", id="ferry.sites.shares", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Ferry — Sites", classes="screen-title")
        table: DataTable[str | Text] = ListTable(cursor_type="row", zebra_stripes=True,
                                                 id="sites")
        table.add_column("Name", key="name")
        table.add_column("Address", key="address")
        table.add_column("Layout", key="layout")
        table.add_column("Last connected", key="last")
        yield table
        yield Static("", id="sites-hint", classes="hint")
        yield status_bar()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        """Back from the browser (or a dialog): show fresh "last connected" stamps."""
        if self.is_mounted:
            self.reload()

    # ------------------------------------------------------------------ data

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#sites", DataTable)

    def reload(self, select: str | None = None) -> None:
        """Re-read sites.toml into the table, keeping (or moving to) a selection."""
        table = self.table
        keep = select or self.selected_name()
        try:
            sites = ferry(self.app).store.list()
        except FerryError as exc:
            sites = []
            self.notify(exc.message, title="Sites", severity="error", timeout=10)
        table.clear()
        table.add_rows(
            [
                (plain(s.name), plain(s.address), plain(s.layout), _when(s.last_connected))
                for s in sites
            ]
        )
        self._names = [s.name for s in sites]
        hint = self.query_one("#sites-hint", Static)
        if sites:
            hint.update("Enter open · a add · e edit · d delete · t test · i import · k new key")
        else:
            hint.update(
                "No sites yet: a add · i import ~/.ssh/config · l local files"
            )
        if keep in self._names:
            table.move_cursor(row=self._names.index(keep))
        table.focus()

    def selected_name(self) -> str | None:
        names: list[str] = getattr(self, "_names", [])
        row = self.table.cursor_row
        if not names or row < 0 or row >= len(names):
            return None
        return names[row]

    def _selected_site(self) -> Site | None:
        name = self.selected_name()
        if name is None:
            self.notify("No site selected: press a to add one.", severity="warning")
            return None
        try:
            return ferry(self.app).store.get(name)
        except FerryError as exc:
            self.notify(exc.message, severity="error")
            return None

    # ------------------------------------------------------------------ actions

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        name = self.selected_name()
        if name is None:
            self.notify("No site selected: press a to add one.", severity="warning")
            return
        self._open(name)

    def action_local(self) -> None:
        self._open(None)

    def _open(self, name: str | None) -> None:
        try:
            ferry(self.app).open_browser(name)
        except ImportError:
            self.notify("The browser is not available in this build.", severity="error")

    def action_reload(self) -> None:
        self.reload()

    def action_shares(self) -> None:
        from tui.screens.shares import open_shares

        open_shares(self.app)

    def action_add(self) -> None:
        self.app.push_screen(
            SiteFormDialog(None, ferry(self.app).store.names(), self._save),
            callback=self._saved,
        )

    def action_edit(self) -> None:
        site = self._selected_site()
        if site is None:
            return
        vault: Vault | None = ferry(self.app).vault
        self.app.push_screen(
            SiteFormDialog(
                site,
                ferry(self.app).store.names(),
                self._save,
                has_password=vault is not None
                and secret_name(site.name, "password") in vault,
                has_passphrase=vault is not None
                and secret_name(site.name, "passphrase") in vault,
            ),
            callback=self._saved,
        )

    async def _save(self, result: SiteFormResult) -> None:
        """Save a form's result: secrets into the vault, the site into sites.toml."""
        app = self.app
        store = ferry(app).store
        site = result.site
        secrets: dict[str, str] = {}
        if result.password and site.auth == "password":
            secrets[secret_name(site.name, "password")] = result.password
        if result.passphrase and site.key_file:
            secrets[secret_name(site.name, "passphrase")] = result.passphrase
        renamed = result.original_name is not None and result.original_name != site.name
        old = store.get(result.original_name) if result.original_name is not None else None
        encrypting = site.encrypt_at_rest and not (old is not None and old.encrypt_at_rest
                                                   and not renamed)
        vault: Vault | None = None
        if secrets or encrypting:
            vault = await ferry(app).unlock_vault(create=True)
        elif renamed and old is not None and old.encrypt_at_rest:
            vault = await ferry(app).unlock_vault()  # the key moves
        elif renamed:
            vault = ferry(app).vault
        if vault is not None and renamed and result.original_name is not None:
            for kind in ("password", "passphrase", "encryption-key"):
                vault.rename(secret_name(result.original_name, kind),
                             secret_name(site.name, kind))
        self._key_created = None
        # the same backend call as 'ferry sites add --encrypt-at-rest' (saves the vault)
        if encrypting and vault is not None and atrest.ensure_key(vault, site.name).created:
            self._key_created = site.name
        if result.original_name is None:
            store.add(site)
        else:
            changes = {
                key: getattr(site, key)
                for key in ("name", "host", "port", "user", "auth", "key_file", "remote_dir",
                            "layout", "cipher_profile", "jump", "server_profile",
                            "encrypt_at_rest")
            }
            store.update(result.original_name, **changes)
            server_profile.rename_profile(result.original_name, site.name)
        if vault is not None:
            for key, value in secrets.items():
                vault.set(key, value)
            vault.save()

    def _saved(self, result: SiteFormResult | None) -> None:
        if result is None:
            return
        verb = "Added" if result.original_name is None else "Saved"
        self.notify(Text.assemble(f"{verb} site ", plain(result.site.name)).plain)
        self.reload(select=result.site.name)
        created, self._key_created = self._key_created, None
        if created is not None:  # losing the key loses the data: say so, with the backup step
            self.app.push_screen(MessageDialog(
                f"Encryption key created for {created}",
                [plain(line) for line in atrest.backup_advice(created)],
            ))

    def action_delete(self) -> None:
        site = self._selected_site()
        if site is None:
            return
        vault: Vault | None = ferry(self.app).vault
        lines = [
            f"Remove site {site.name} ({site.address}) from sites.toml.",
            f"Its {len(site.host_keys)} pinned host key(s) are forgotten.",
        ]
        names = [secret_name(site.name, k) for k in ("password", "passphrase")]
        stored = [n for n in names if vault is not None and n in vault]
        if stored:
            lines.append(f"Delete its {len(stored)} secret(s) from the vault.")
        if site.encrypt_at_rest:
            lines.append("Its encryption-at-rest key stays in the vault (its files need it).")
        lines.append("Files on the server are not touched.")

        def done(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                ferry(self.app).store.remove(site.name)
                server_profile.forget_profile(site.name)
                if vault is not None and stored:
                    for n in stored:
                        vault.delete(n)
                    vault.save()
            except FerryError as exc:
                self.notify(exc.message, title="Delete", severity="error", timeout=10)
                return
            self.notify(f"Deleted site {site.name}")
            self.reload()

        self.app.push_screen(
            ConfirmDialog(f"Delete site {site.name}?", lines, danger=True,
                          confirm_label="Delete"),
            callback=done,
        )

    def action_test(self) -> None:
        site = self._selected_site()
        if site is not None:
            self._test(site.name)

    @work(exclusive=True, group="sites-test")
    async def _test(self, name: str) -> None:
        self.notify(f"Connecting to {name}…", timeout=3)
        try:
            site, conn = await ferry(self.app).connect_site(name)
        except FerryError:
            return  # connect_site has shown the error
        problem: str | None = None
        try:
            info = ssh.negotiated(conn)
            try:
                await server_profile.redetect(conn, site)
            except FerryError as exc:
                problem = exc.message
        finally:
            conn.close()
        lines: list[str | Text] = [Text.assemble(("Connected to ", ""), plain(site.address))]
        width = max((len(k) for k in info), default=0)
        for key, value in info.items():
            lines.append(Text.assemble((f"{key:<{width}}  ", "bold"), plain(value)))
        lines.append(Text(""))
        if problem is not None:
            lines.append(plain(f"server profile not detected: {problem}"))
        for line in server_profile.report_lines(site):
            label, sep, rest = line.partition(": ")
            lines.append(Text.assemble((label + sep, "bold"), plain(rest)) if sep
                         else plain(line))
        self.reload(select=name)
        await ask(self.app, MessageDialog(f"Test of {name}: OK", lines))

    @work(exclusive=True, group="sites-import")
    async def action_import_ssh_config(self) -> None:
        path = await ask(
            self.app,
            TextInputDialog("Import sites from an OpenSSH config file", value="~/.ssh/config"),
        )
        if not path:
            return
        try:
            parsed = parse_ssh_config(path)
            added, skipped = import_into_store(parsed, ferry(self.app).store)
        except FerryError as exc:
            self.notify(exc.message, title="Import", severity="error", timeout=10)
            return
        skipped = parsed.skipped + skipped
        lines: list[str | Text] = [Text(f"Imported {len(added)} site(s)", style="bold")]
        lines += [plain(f"  + {s.name}  {s.address}") for s in added]
        lines.append(Text(f"Skipped {len(skipped)}", style="bold"))
        lines += [plain(f"  - {name}: {why}") for name, why in skipped]
        for name, note in parsed.notes:
            lines.append(plain(f"  note {name}: {note}"))
        if added:
            lines.append(Text("Host keys are asked for on the first connection."))
        self.reload()
        await ask(self.app, MessageDialog("Import from ssh config", lines))

    @work(exclusive=True, group="sites-keygen")
    async def action_keygen(self) -> None:
        selected = self.selected_name()
        name = await ask(
            self.app,
            TextInputDialog(
                "Generate an ed25519 key pair: file name under $FERRY_HOME/keys",
                value=f"{selected}_ed25519" if selected else "ferry_ed25519",
                validator=_key_name_problem,
            ),
        )
        if not name:
            return
        passphrase = await ask(
            self.app,
            SecretDialog(
                "Passphrase for the new key (empty: none; it is then protected only by "
                "file permissions)",
                validator=lambda _value: None,
            ),
        )
        if passphrase is None:
            return
        try:
            path, public_line = generate_keypair("ed25519", name, passphrase or None)
        except FerryError as exc:
            self.notify(exc.message, title="Key", severity="error", timeout=10)
            return
        lines: list[str | Text] = [
            Text.assemble("Private key: ", plain(str(path))),
            Text.assemble("Public key:  ", plain(f"{path}.pub")),
            Text("Send the public key below to the provider for their authorized_keys; "
                 "then set it as the site's key file (e)."),
        ]
        await ask(self.app, MessageDialog("New key pair", lines, copy_text=public_line))


def _key_name_problem(value: str) -> str | None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", value) or value.endswith(".pub"):
        return "use letters, digits, '.', '_' or '-' (max 64), not ending in .pub"
    return None

