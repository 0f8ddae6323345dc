"""``SiteFormDialog``: add or edit a saved site, validated inline.

Each field is checked as the CLI would (``Site.validate()``, key file exists and is readable,
name not taken, jump host saved) and the store's own errors are shown in the form too: the
form calls an async ``save`` callback and stays open, with the message under the fields, if it
raises a :class:`~backend.errors.FerryError`. Password and key passphrase are masked and go
only to the vault (the callback's job); an empty secret field means "leave as is". The
"Encrypt at rest" switch has the callback create the site's key in the vault, as
``ferry sites add --encrypt-at-rest`` does (backend/atrest.py). A private key file that other
users may read is refused with its ``chmod 600`` fix (backend/keys.py ``check_key_mode``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, Switch

from backend.errors import ConfigError, FerryError
from backend.keys import check_key_mode
from backend.sites.model import (
    AUTH_METHODS,
    CIPHER_PROFILES,
    LAYOUTS,
    SERVER_PROFILES,
    Site,
    default_user,
)
from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain


@dataclass
class SiteFormResult:
    """What the form produced: the site, and secrets to store (``None``: unchanged)."""

    site: Site
    original_name: str | None
    password: str | None = None
    passphrase: str | None = None


SaveCallback = Callable[[SiteFormResult], Awaitable[None]]
DEIDENTIFY_CHOICES = ("optional", "required")  # Site.require_deidentified: False, True

# Which input a validation message is about (first match wins).
_FIELD_WORDS = (
    ("unprotected private key", "key_file"),  # backend/keys.py check_key_mode
    ("site name", "name"),
    ("name", "name"),
    ("host", "host"),
    ("port", "port"),
    ("user", "user"),
    ("key file", "key_file"),
    ("key", "key_file"),
    ("jump", "jump"),
    ("password", "password"),
)


def field_of(message: str) -> str | None:
    lowered = message.lower()
    for word, field in _FIELD_WORDS:
        if word in lowered:
            return field
    return None


def check_key_file(raw: str) -> str:
    """The key file's absolute path, or ConfigError if it is missing or unreadable."""
    path = Path(os.path.expanduser(raw))
    if not path.is_file():
        raise ConfigError(f"key file {raw} does not exist")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"key file {raw} is not readable")
    check_key_mode(path.resolve())
    return str(path.resolve())


class SiteFormDialog(FerryDialog[SiteFormResult | None]):
    DEFAULT_CSS = """
    SiteFormDialog > .dialog { height: auto; max-height: 100%; width: 90; }
    SiteFormDialog #form { height: auto; max-height: 14; }
    SiteFormDialog .row { height: 1; }
    SiteFormDialog .row Input, SiteFormDialog .row SelectCurrent { background: $panel; }
    SiteFormDialog .row Input:focus { background: $primary 30%; }
    SiteFormDialog .row Label { width: 12; padding: 0 1 0 0; text-align: right; }
    SiteFormDialog .row Input, SiteFormDialog .row Select { width: 1fr; }
    SiteFormDialog Input.invalid { background: $error 40%; }
    SiteFormDialog .row Switch { border: none; height: 1; padding: 0; width: auto; }
    SiteFormDialog .row .switch-note { width: 1fr; padding: 0 0 0 1; color: $text-muted; }
    SiteFormDialog .dialog-buttons { margin-top: 0; }
    """

    def __init__(
        self,
        site: Site | None,
        names: list[str],
        save: SaveCallback,
        *,
        has_password: bool = False,
        has_passphrase: bool = False,
    ) -> None:
        super().__init__()
        self.original = site
        self.names = list(names)
        self.save = save
        self.has_password = has_password
        self.has_passphrase = has_passphrase

    def _row(self, label: str, widget: Input | Select[str]) -> Horizontal:
        return Horizontal(Label(label), widget, classes="row")

    def _input(self, label: str, field: str, value: str = "", *, placeholder: str = "",
               type: Literal["integer", "number", "text"] = "text",
               password: bool = False) -> Horizontal:
        return self._row(label, Input(value, placeholder, id=field, compact=True, type=type,
                                      password=password))

    def _choice(self, label: str, field: str, options: tuple[str, ...], value: str) -> Horizontal:
        return self._row(
            label,
            Select([(x, x) for x in options], value=value, allow_blank=False, id=field,
                   compact=True),
        )

    def compose(self) -> ComposeResult:
        site = self.original or Site(name="", host="", user=default_user())
        title = f"Edit site {site.name}" if self.original else "Add a site"
        kept = "(stored; type to replace)"
        with Vertical(classes="dialog"):
            yield Static(plain(title), classes="dialog-title")
            with VerticalScroll(id="form"):
                yield self._input("Name", "name", site.name, placeholder="e.g. idt")
                yield self._input("Host", "host", site.host, placeholder="sftp.example.org")
                yield self._input("Port", "port", str(site.port), type="integer")
                yield self._input("User", "user", site.user)
                yield self._choice("Auth", "auth", AUTH_METHODS, site.auth)
                yield self._input("Key file", "key_file", site.key_file or "",
                                  placeholder="~/.ssh/id_ed25519")
                yield self._input(
                    "Password", "password", password=True,
                    placeholder=kept if self.has_password else "only for password auth",
                )
                yield self._input(
                    "Passphrase", "passphrase", password=True,
                    placeholder=kept if self.has_passphrase else "if the key is encrypted",
                )
                yield self._input("Remote dir", "remote_dir", site.remote_dir,
                                  placeholder="folder to open (optional)")
                yield self._choice("Layout", "layout", LAYOUTS, site.layout)
                yield self._choice("Ciphers", "cipher_profile", CIPHER_PROFILES,
                                   site.cipher_profile)
                yield self._input("Jump host", "jump", site.jump or "",
                                  placeholder="another saved site (optional)")
                yield self._choice("Server", "server_profile", SERVER_PROFILES,
                                   site.server_profile)
                yield Horizontal(
                    Label("Encrypt"),
                    Switch(site.encrypt_at_rest, id="encrypt_at_rest", animate=False),
                    Static("at rest: uploads encrypted with a key kept in the vault",
                           classes="switch-note"),
                    classes="row",
                )
                yield self._choice("De-identify", "require_deidentified", DEIDENTIFY_CHOICES,
                                   DEIDENTIFY_CHOICES[int(site.require_deidentified)])
            yield Static("", id="error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def _select(self, field: str) -> str:
        return str(self.query_one(f"#{field}", Select).value)

    def build(self) -> SiteFormResult:
        """The form's content as a validated result, or ConfigError naming the problem."""
        port_text = self._value("port")
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"port must be a number 1-65535, got {port_text!r}") from None
        name = self._value("name")
        key_raw = self._value("key_file")
        key_file = check_key_file(key_raw) if key_raw else None
        base = self.original or Site(name=name, host="")
        site = replace(
            base,
            name=name,
            host=self._value("host"),
            port=port,
            user=self._value("user"),
            auth=self._select("auth"),
            key_file=key_file,
            remote_dir=self._value("remote_dir"),
            layout=self._select("layout"),
            cipher_profile=self._select("cipher_profile"),
            jump=self._value("jump") or None,
            server_profile=self._select("server_profile"),
            encrypt_at_rest=self.query_one("#encrypt_at_rest", Switch).value,
            require_deidentified=self._select("require_deidentified") == DEIDENTIFY_CHOICES[1],
            host_keys=list(base.host_keys),
        )
        site.validate()
        original_name = self.original.name if self.original else None
        if name != original_name and name in self.names:
            raise ConfigError(f"a site named {name} already exists; pick another name")
        if site.jump is not None and site.jump not in self.names:
            raise ConfigError(f"jump host {site.jump} is not a saved site")
        password = self.query_one("#password", Input).value or None
        if site.auth == "password" and password is None and not self.has_password:
            raise ConfigError("password auth needs a password")
        return SiteFormResult(
            site=site,
            original_name=original_name,
            password=password,
            passphrase=self.query_one("#passphrase", Input).value or None,
        )

    def show_error(self, message: str, hint: str | None = None) -> None:
        for widget in self.query(Input):
            widget.remove_class("invalid")
        self.query_one("#error", Static).update(plain(message + (f" ({hint})" if hint else "")))
        field = field_of(message)
        if field is not None:
            target = self.query(f"#{field}")
            if target:
                first = target.first()
                if isinstance(first, Input):
                    first.add_class("invalid")
                first.focus()

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def _submit(self, event: Button.Pressed | Input.Submitted) -> None:
        event.stop()
        self._save()

    @on(Button.Pressed, "#cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    @work(exclusive=True, group="site-form-save")
    async def _save(self) -> None:
        try:
            result = self.build()
            await self.save(result)
        except FerryError as exc:
            self.show_error(exc.message, exc.hint)
            return
        self.dismiss(result)
