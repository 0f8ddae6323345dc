"""Connecting from the command line: a site name in, an authenticated SSH session out.

Fetches secrets from the vault only when the site needs them, asks about unknown host keys on a
terminal (accept and save / connect once / cancel; cancel is the default) and fails closed with
the ``ferry sites trust`` command otherwise, pins accepted keys and records the connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncssh

from backend import credentials, ssh
from backend.hostkeys import PresentedKey, TrustDecision
from backend.sites.model import Site
from backend.sites.store import SiteStore
from tui.cli.output import ask_choice, info, is_interactive


def credentials_for(site: Site) -> ssh.Credentials:
    """The secrets ``site`` needs, from the vault (unlocked only if something is needed)."""
    if not credentials.needs_vault(site):
        return ssh.Credentials()
    from tui.cli.vault_cli import unlock_vault

    return credentials.from_vault(site, unlock_vault())


async def ask_host_key(site_name: str, key: PresentedKey) -> TrustDecision:
    """The CLI's host-key question; only used when a person can answer."""
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


async def connect_site(
    name: str, store: SiteStore | None = None
) -> tuple[Site, asyncssh.SSHClientConnection]:
    store = store or SiteStore()
    site = store.get(name)
    conn = await ssh.connect(
        site,
        credentials=credentials_for(site),
        prompt=ask_host_key if is_interactive() else None,
        pin=store.pin_host_key,
        lookup=store.get,
        jump_credentials=credentials_for,
    )
    store.record_connected(site.name)
    return site, conn


@contextlib.asynccontextmanager
async def sftp_for(
    name: str, store: SiteStore | None = None
) -> AsyncIterator[tuple[Site, asyncssh.SSHClientConnection, asyncssh.SFTPClient]]:
    """``async with sftp_for("demo") as (site, conn, sftp)``."""
    site, conn = await connect_site(name, store)
    async with ssh.sftp_on(conn, site) as sftp:
        yield site, conn, sftp
