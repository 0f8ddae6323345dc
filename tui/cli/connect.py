"""The command line's prompter, and its one :class:`backend.session.Session` per process.

Connecting, unlocking the vault and building the transfer engine are backend/session.py's;
this module only asks on a terminal: unknown host keys (accept and save / connect once /
cancel; cancel is the default), the vault master passphrase (no echo), a password or key
passphrase the vault does not hold. Without a terminal nothing is asked: unknown host keys
fail closed with the ``ferry sites trust`` command, the vault needs
``FERRY_VAULT_PASSPHRASE_FILE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh

from backend.errors import HostKeyChangedError, UsageError, VaultError
from backend.hostkeys import PresentedKey, TrustDecision
from backend.session import PASSPHRASE_ENV, Session
from backend.sites.model import Site
from backend.sites.store import SiteStore
from tui.cli.output import ask_choice, ask_secret, info, is_interactive


def _need_terminal(what: str) -> UsageError:
    return UsageError(
        f"cannot ask for the {what} without a terminal",
        hint=f"put it in a 0600 file and set {PASSPHRASE_ENV}=FILE",
    )


def prompt_new_passphrase(label: str = "New vault master passphrase") -> str:
    """A new passphrase typed twice (no echo); VaultError if the two differ."""
    first = ask_secret(f"{label}: ")
    second = ask_secret(f"{label} (again): ")
    if first != second:
        raise VaultError("the two passphrases differ; nothing was changed")
    return first


class TerminalPrompter:
    """Asks on the terminal when a person is there (backend.session.Prompter)."""

    async def host_key(self, site_name: str, key: PresentedKey) -> TrustDecision | None:
        if not is_interactive():
            return None  # fail closed: the error names 'ferry sites trust'
        info(
            f"The host key of site '{site_name}' is not known yet.\n"
            f"  key type:    {key.key_type}\n"
            f"  fingerprint: {key.fingerprint}\n"
            "Compare the fingerprint with the one the server's admin gave you."
        )
        answer = ask_choice(
            "Trust this key?",
            {"a": "accept and save", "o": "connect once", "c": "cancel"},
            default="c",
        )
        return {
            "a": TrustDecision.ACCEPT_AND_SAVE,
            "o": TrustDecision.CONNECT_ONCE,
            "c": TrustDecision.CANCEL,
        }[answer]

    async def host_key_changed(self, site_name: str, error: HostKeyChangedError) -> None:
        return None  # the error itself is the warning (printed by tui/cli/__init__.py)

    async def vault_passphrase(self, path: Path, *, create: bool) -> str | None:
        if not is_interactive():
            raise _need_terminal("vault master passphrase")
        if not create:
            return ask_secret("Vault master passphrase: ")
        info(f"Creating the secret vault {path}.")
        return prompt_new_passphrase()

    async def secret(self, site: Site, what: str) -> str | None:
        if not is_interactive():
            return None
        return ask_secret(f"{what.capitalize()} for site {site.name} (not stored): ") or None


_session: Session | None = None


def cli_session() -> Session:
    """This process's session (one vault unlock per ``ferry`` command)."""
    global _session
    if _session is None:
        _session = Session(TerminalPrompter())
    return _session


async def connect_site(
    name: str, store: SiteStore | None = None
) -> tuple[Site, asyncssh.SSHClientConnection]:
    """Connect to a saved site (``store``: unused, sites.toml is read afresh each time)."""
    del store
    return await cli_session().connect(name)


@contextlib.asynccontextmanager
async def sftp_for(
    name: str, store: SiteStore | None = None
) -> AsyncIterator[tuple[Site, asyncssh.SSHClientConnection, asyncssh.SFTPClient]]:
    """``async with sftp_for("demo") as (site, conn, sftp)``."""
    del store
    async with cli_session().sftp(name) as opened:
        yield opened
