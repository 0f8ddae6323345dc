"""Unlocking the secret vault from the command line, and ``ferry vault passwd``.

The master passphrase comes from the file named by ``FERRY_VAULT_PASSPHRASE_FILE`` (scripts,
headless servers) or else a no-echo prompt on the terminal. Nothing here ever takes a secret
from argv.
"""

from __future__ import annotations

import argparse
import os

from backend import paths
from backend.errors import UsageError, VaultError
from backend.vault import Vault
from tui.cli.output import ask_secret, info, is_interactive, read_secret_file

PASSPHRASE_ENV = "FERRY_VAULT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)


def _passphrase_from_env() -> str | None:
    path = os.environ.get(PASSPHRASE_ENV)
    if not path:
        return None
    return read_secret_file(path)


def _need_terminal(what: str) -> UsageError:
    return UsageError(
        f"cannot ask for the {what} without a terminal",
        hint=f"put it in a 0600 file and set {PASSPHRASE_ENV}=FILE",
    )


def _prompt_new(label: str) -> str:
    first = ask_secret(f"{label}: ")
    second = ask_secret(f"{label} (again): ")
    if first != second:
        raise VaultError("the two passphrases differ; nothing was changed")
    return first


def unlock_vault(create: bool = False) -> Vault | None:
    """Open the vault, asking for the master passphrase if needed.

    Returns ``None`` when there is no vault yet and ``create`` is False (so no secret is
    stored). With ``create=True`` a missing vault is created (the prompt asks twice).
    Raises :class:`VaultError` for a wrong passphrase (exit 4) and :class:`UsageError` when
    nobody can be asked and ``FERRY_VAULT_PASSPHRASE_FILE`` is unset.
    """
    path = paths.vault_file()
    exists = Vault.exists(path)
    if not exists and not create:
        return None
    passphrase = _passphrase_from_env()
    if passphrase is None:
        if not is_interactive():
            raise _need_terminal("vault master passphrase")
        if exists:
            passphrase = ask_secret("Vault master passphrase: ")
        else:
            info(f"Creating the secret vault {path}.")
            passphrase = _prompt_new("New vault master passphrase")
    if exists:
        return Vault.open(path, passphrase)
    return Vault.create(path, passphrase)


def open_vault_unattended() -> Vault | None:
    """The vault if it exists and ``FERRY_VAULT_PASSPHRASE_FILE`` unlocks it; never prompts."""
    path = paths.vault_file()
    if not Vault.exists(path) or not os.environ.get(PASSPHRASE_ENV):
        return None
    passphrase = _passphrase_from_env()
    assert passphrase is not None
    return Vault.open(path, passphrase)


def register_vault_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``ferry vault`` group."""
    vault = sub.add_parser("vault", help="the encrypted store of site passwords and passphrases")
    vault_sub = vault.add_subparsers(dest="vault_command", metavar="COMMAND")
    passwd = vault_sub.add_parser("passwd", help="change the vault master passphrase")
    passwd.add_argument(
        "--new-passphrase-file", metavar="FILE",
        help="read the new master passphrase from the first line of FILE ('-' for stdin)",
    )
    passwd.set_defaults(func=cmd_passwd)
    names = vault_sub.add_parser("list", help="list the names of stored secrets (never values)")
    names.set_defaults(func=cmd_list)


def cmd_passwd(args: argparse.Namespace) -> int:
    path = paths.vault_file()
    if not Vault.exists(path):
        raise VaultError(
            f"no vault at {path}",
            hint="it is created when you first store a password with --password-stdin",
        )
    vault = unlock_vault()
    assert vault is not None
    if args.new_passphrase_file:
        new = read_secret_file(args.new_passphrase_file)
    else:
        if not is_interactive():
            raise _need_terminal("new master passphrase")
        new = _prompt_new("New vault master passphrase")
    vault.change_passphrase(new)
    info(f"Vault master passphrase changed ({len(vault.names())} secrets re-encrypted).")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    vault = unlock_vault()
    if vault is None:
        info("No vault yet: nothing stored.")
        return 0
    for name in vault.names():
        print(name)
    return 0
