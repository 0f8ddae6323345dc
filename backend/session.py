"""The one wiring both faces use: a site name in, a connection (or a transfer engine) out.

The TUI (tui/app.py) and the ``ferry`` command (tui/cli/connect.py) each hand a
:class:`Prompter` to a :class:`Session`; everything else is here, once:

* the vault is unlocked at most once per session — from the file named by
  ``FERRY_VAULT_PASSPHRASE_FILE`` (scripts, headless servers), else by asking the prompter —
  and only when a site needs a secret (:mod:`backend.credentials`);
* a password or key passphrase the vault does not hold is asked for (never stored);
* :meth:`Session.connect` opens the site through :func:`backend.ssh.connect` (host keys asked
  about and pinned, a changed key reported to the prompter, jump hosts resolved from the
  store) and records the connection;
* :meth:`Session.engine` builds the :class:`~backend.transfers.TransferEngine` with this
  session's connector and key provider (:meth:`Session.key_for`, the site's at-rest key from
  the vault: backend/atrest.py), so encrypted sites work the same in every face, including the
  case workflows (backend/cases/transport.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncssh

from backend import atrest, credentials, paths, ssh
from backend.errors import AuthError, CancelledByUser, HostKeyChangedError, UsageError
from backend.hostkeys import PresentedKey, TrustDecision
from backend.sites.model import SecretKind, Site, secret_name
from backend.sites.store import SiteStore
from backend.vault import Vault

if TYPE_CHECKING:
    from backend.audit import AuditLog
    from backend.transfers import Connector, TransferEngine

PASSPHRASE_ENV = "FERRY_VAULT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)


class Prompter(Protocol):
    """The questions only a person can answer; each face (TUI dialogs, terminal) implements
    them. Return ``None`` when nobody can answer: Ferry then fails closed with a hint."""

    async def host_key(self, site_name: str, key: PresentedKey) -> TrustDecision | None:
        """Trust an unknown host key? (accept and save / connect once / cancel)"""

    async def host_key_changed(self, site_name: str, error: HostKeyChangedError) -> None:
        """Show a changed host key (the connection is refused in any case)."""

    async def vault_passphrase(self, path: Path, *, create: bool) -> str | None:
        """The vault's master passphrase; ``create``: a new one (asked twice, checked)."""

    async def secret(self, site: Site, what: str) -> str | None:
        """A ``"password"`` or ``"key passphrase"`` the vault does not hold."""


class NoPrompts:
    """A prompter for unattended use: nothing can be asked, so everything fails closed."""

    async def host_key(self, site_name: str, key: PresentedKey) -> TrustDecision | None:
        return None

    async def host_key_changed(self, site_name: str, error: HostKeyChangedError) -> None:
        return None

    async def vault_passphrase(self, path: Path, *, create: bool) -> str | None:
        return None

    async def secret(self, site: Site, what: str) -> str | None:
        return None


def read_secret_file(path: str) -> str:
    """A secret from a file (first line, newline stripped)."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not value:
        raise UsageError(f"{path} is empty: expected the secret on its first line")
    return value


def passphrase_from_env() -> str | None:
    """The master passphrase from ``FERRY_VAULT_PASSPHRASE_FILE``, if that is set."""
    path = os.environ.get(PASSPHRASE_ENV)
    return read_secret_file(path) if path else None


class Session:
    """One face's session: the site store, the vault (unlocked once), its prompter."""

    def __init__(self, prompter: Prompter | None = None, store: SiteStore | None = None) -> None:
        self.prompter: Prompter = prompter or NoPrompts()
        self.store = store or SiteStore()
        self._vault: Vault | None = None
        self.on_unlocked: Callable[[str], None] | None = None
        """Called with the passphrase once a person's typed passphrase opened the vault (the
        TUI hands it to the agent it is attached to, so nobody types it twice)."""

    # -- the vault ------------------------------------------------------------------------

    @property
    def unlocked_vault(self) -> Vault | None:
        """The vault if this session has unlocked it already (never prompts)."""
        return self._vault

    async def vault(self, create: bool = False) -> Vault | None:
        """The vault, unlocked once per session.

        ``None`` when there is no vault and ``create`` is False (nothing is stored yet). With
        ``create`` a missing vault is created. Raises VaultError for a wrong passphrase,
        CancelledByUser when the prompter declines, UsageError when nobody can be asked.
        """
        if self._vault is not None:
            return self._vault
        path = paths.vault_file()
        exists = Vault.exists(path)
        if not exists and not create:
            return None
        passphrase = passphrase_from_env()
        if passphrase is None:
            passphrase = await self.prompter.vault_passphrase(path, create=not exists)
        if passphrase is None:
            if isinstance(self.prompter, NoPrompts):
                raise UsageError(
                    "cannot ask for the vault master passphrase here",
                    hint=f"put it in a 0600 file and set {PASSPHRASE_ENV}=FILE",
                )
            raise CancelledByUser(
                "vault stays locked; nothing was done" if exists
                else "vault not created; nothing was saved"
            )
        self._vault = Vault.open(path, passphrase) if exists else Vault.create(path, passphrase)
        if self.on_unlocked is not None:
            self.on_unlocked(passphrase)
        return self._vault

    def unlock_unattended(self) -> Vault | None:
        """The vault if it exists and ``FERRY_VAULT_PASSPHRASE_FILE`` unlocks it (or it is
        unlocked already); never prompts."""
        if self._vault is not None:
            return self._vault
        path = paths.vault_file()
        passphrase = passphrase_from_env() if Vault.exists(path) else None
        if passphrase is not None:
            self._vault = Vault.open(path, passphrase)
        return self._vault

    # -- connecting -----------------------------------------------------------------------

    async def credentials(self, site: Site) -> ssh.Credentials:
        """The secrets ``site`` needs: from the vault, else asked for (never stored)."""
        need_password = credentials.needs_password(site)
        need_passphrase = credentials.needs_passphrase(site)
        if not (need_password or need_passphrase):
            return ssh.Credentials()
        vault = await self.vault()
        found: dict[str, str | None] = {}
        checks: tuple[tuple[bool, SecretKind, str, str], ...] = (
            (need_password, "password", "password", "--password-stdin"),
            (need_passphrase, "passphrase", "key passphrase", "--key-passphrase-stdin"),
        )
        for needed, kind, what, flag in checks:
            if not needed:
                continue
            value = vault.get(secret_name(site.name, kind)) if vault is not None else None
            if value is None:
                value = await self.prompter.secret(site, what)
            if value is None:
                where = "no vault exists" if vault is None else "the vault holds none"
                raise AuthError(f"site {site.name} needs a {what} but {where}",
                                hint=f"ferry sites edit {site.name} {flag}")
            found[kind] = value
        return ssh.Credentials(password=found.get("password"),
                               key_passphrase=found.get("passphrase"))

    async def connect(self, name: str) -> tuple[Site, asyncssh.SSHClientConnection]:
        """Connect to the saved site ``name`` (and its jump hosts)."""
        site = self.store.get(name)
        hops = credentials.chain(site, self.store.get)
        creds = {hop.name: await self.credentials(hop) for hop in hops}
        try:
            conn = await ssh.connect(
                site,
                credentials=creds[site.name],
                prompt=self.prompter.host_key,
                pin=self.store.pin_host_key,
                lookup=self.store.get,
                jump_credentials=lambda s: creds.get(s.name) or ssh.Credentials(),
            )
        except HostKeyChangedError as exc:
            await self.prompter.host_key_changed(site.name, exc)
            raise
        self.store.record_connected(site.name)
        return site, conn

    @contextlib.asynccontextmanager
    async def sftp(
        self, name: str
    ) -> AsyncIterator[tuple[Site, asyncssh.SSHClientConnection, asyncssh.SFTPClient]]:
        """``async with session.sftp("demo") as (site, conn, sftp)``."""
        site, conn = await self.connect(name)
        async with ssh.sftp_on(conn, site) as sftp:
            yield site, conn, sftp

    # -- transfers ------------------------------------------------------------------------

    async def key_for(self, site: Site) -> bytes:
        """The engine's key provider: ``site``'s at-rest key from the vault."""
        return atrest.read_key(await self.vault(), site.name)

    def engine(self, *, run_all_jobs: bool = True, audit: AuditLog | None = None,
               connector: Connector | None = None) -> TransferEngine:
        """A transfer engine wired to this session (not started).

        ``run_all_jobs=False``: only the jobs this engine submits or adopts (the CLI's
        ``ferry get`` / ``put`` and the case commands); True: also every unfinished job in the
        journal that nobody else runs (the TUI). ``connector``: a face's wrapper around
        :meth:`connect` (the TUI's also shows the error); default :meth:`connect`."""
        from backend.transfers import TransferEngine  # the heavy part, loaded when needed

        return TransferEngine(connector or self.connect, key_provider=self.key_for,
                              audit=audit, run_all_jobs=run_all_jobs)

    @contextlib.asynccontextmanager
    async def running_engine(self, *, run_all_jobs: bool = False
                             ) -> AsyncIterator[TransferEngine]:
        """``async with session.running_engine() as engine``: started, then stopped."""
        engine = self.engine(run_all_jobs=run_all_jobs)
        await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()
