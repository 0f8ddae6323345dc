"""``ferry vault``: the encrypted store of site secrets, from the command line.

Unlocking is backend/session.py's (the passphrase comes from the file named by
``FERRY_VAULT_PASSPHRASE_FILE``, else a no-echo prompt: tui/cli/connect.py); this module adds
the commands: ``passwd``, ``list``, ``set NAME`` (the value from a no-echo prompt or
``--from-file``, never argv), ``remove NAME``, and ``export-key`` / ``import-key`` for a site's
encryption-at-rest key (backend/atrest.py). Nothing here ever takes a secret from argv.
"""

from __future__ import annotations

import argparse
import asyncio

from backend import atrest, paths
from backend.errors import CancelledByUser, ConfigError, UsageError, VaultError
from backend.names import display_name
from backend.session import PASSPHRASE_ENV
from backend.transfers.crypt import key_secret_name, parse_key
from backend.vault import Vault
from tui.cli.connect import cli_session, prompt_new_passphrase
from tui.cli.output import ask_choice, ask_secret, info, is_interactive, read_secret_file

KEY_SUFFIX = "/encryption-key"


def unlock_vault(create: bool = False) -> Vault | None:
    """Open the vault, asking for the master passphrase if needed (once per process).

    Returns ``None`` when there is no vault yet and ``create`` is False (so no secret is
    stored). With ``create=True`` a missing vault is created (the prompt asks twice).
    Raises :class:`VaultError` for a wrong passphrase (exit 4) and :class:`UsageError` when
    nobody can be asked and ``FERRY_VAULT_PASSPHRASE_FILE`` is unset.
    """
    return asyncio.run(cli_session().vault(create=create))


def open_vault_unattended() -> Vault | None:
    """The vault if it exists and ``FERRY_VAULT_PASSPHRASE_FILE`` unlocks it; never prompts."""
    return cli_session().unlock_unattended()


def register_vault_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``ferry vault`` group."""
    vault = sub.add_parser(
        "vault", help="the encrypted store of site passwords, passphrases and keys",
        description="The vault ($FERRY_HOME/vault.bin) holds site passwords, key passphrases "
        "and encryption-at-rest keys, encrypted under one master passphrase. Values are "
        "never taken from the command line.",
    )
    vault_sub = vault.add_subparsers(dest="vault_command", metavar="COMMAND")
    passwd = vault_sub.add_parser("passwd", help="change the vault master passphrase")
    passwd.add_argument(
        "--new-passphrase-file", metavar="FILE",
        help="read the new master passphrase from the first line of FILE ('-' for stdin)",
    )
    passwd.set_defaults(func=cmd_passwd)
    names = vault_sub.add_parser("list", help="list the names of stored secrets (never values)")
    names.set_defaults(func=cmd_list)

    put = vault_sub.add_parser(
        "set", help="store a secret under NAME (value from a no-echo prompt or --from-file)",
        description="Store a secret, e.g. site/lab/password. The value is read from a no-echo "
        "prompt, or the first line of FILE with --from-file ('-' for stdin); never from argv. "
        "An existing encryption key is never replaced (see 'ferry vault remove').",
    )
    put.add_argument("name", metavar="NAME")
    put.add_argument("--from-file", metavar="FILE", help="read the value from FILE ('-': stdin)")
    put.set_defaults(func=cmd_set)

    rm = vault_sub.add_parser("remove", help="delete the secret NAME")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--yes", action="store_true",
                    help="do not ask before deleting an encryption key (scripts)")
    rm.set_defaults(func=cmd_remove)

    exp = vault_sub.add_parser(
        "export-key", help="back up a site's encryption-at-rest key to a new 0600 file",
        description="Write SITE's encryption-at-rest key (32 bytes) to FILE, created with "
        "mode 0600 (never overwritten). Keep the copy away from this machine: without the "
        "key, the site's encrypted files cannot be read.",
    )
    exp.add_argument("site", metavar="SITE")
    exp.add_argument("--to", required=True, metavar="FILE", dest="path")
    exp.set_defaults(func=cmd_export_key)

    imp = vault_sub.add_parser(
        "import-key", help="restore a site's encryption-at-rest key from a file",
        description="Store the key in FILE (32 raw bytes, as written by 'vault export-key' or "
        "'keygen --symmetric', or 64 hex digits) as SITE's encryption-at-rest key. A different "
        "key already stored is never replaced.",
    )
    imp.add_argument("site", metavar="SITE")
    imp.add_argument("--from", required=True, metavar="FILE", dest="path")
    imp.set_defaults(func=cmd_import_key)


def _existing_vault() -> Vault:
    path = paths.vault_file()
    if not Vault.exists(path):
        raise VaultError(
            f"no vault at {path}",
            hint="it is created when you first store a secret (e.g. 'ferry vault set NAME')",
        )
    vault = unlock_vault()
    assert vault is not None
    return vault


def cmd_passwd(args: argparse.Namespace) -> int:
    vault = _existing_vault()
    if args.new_passphrase_file:
        new = read_secret_file(args.new_passphrase_file)
    else:
        if not is_interactive():
            raise UsageError(
                "cannot ask for the new master passphrase without a terminal",
                hint="use --new-passphrase-file FILE",
            )
        new = prompt_new_passphrase()
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


def cmd_set(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name:
        raise UsageError("a vault entry needs a name, e.g. site/lab/password")
    if args.from_file:
        value = read_secret_file(args.from_file)
    elif is_interactive():
        value = ask_secret(f"Value for {name}: ")
    else:
        raise UsageError(
            f"cannot ask for the value of {name} without a terminal",
            hint="use --from-file FILE (or '--from-file -' for stdin)",
        )
    if name.endswith(KEY_SUFFIX):
        site = name[: -len(KEY_SUFFIX)].removeprefix("site/")
        parse_key(value, site)  # 64 hex digits or a clear error
        vault = unlock_vault(create=True)
        assert vault is not None
        stored = vault.store_new(name, value.strip().lower())
        if parse_key(stored, site) != parse_key(value, site):
            raise ConfigError(
                f"{name} already holds a different key; it was kept (replacing it would make "
                "the files already encrypted with it unreadable)",
                hint=f"back it up with 'ferry vault export-key {site} --to FILE', then "
                f"'ferry vault remove {name}' first",
            )
        info(f"Stored {display_name(name)} in the vault.")
        return 0
    vault = unlock_vault(create=True)
    assert vault is not None
    vault.set(name, value)
    vault.save()
    info(f"Stored {display_name(name)} in the vault.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    vault = _existing_vault()
    name = args.name
    if name not in vault:
        raise ConfigError(f"the vault holds no entry {display_name(name)}",
                          hint="see 'ferry vault list'")
    if name.endswith(KEY_SUFFIX) and not args.yes:
        info(f"{display_name(name)} is an encryption-at-rest key: files encrypted with it "
             "cannot be read without it. Back it up first ('ferry vault export-key').")
        if not is_interactive():
            raise UsageError(f"refusing to delete {display_name(name)} without --yes")
        if ask_choice("Delete it?", {"y": "delete", "n": "keep"}, default="n") != "y":
            raise CancelledByUser(f"{display_name(name)} kept")
    vault.delete(name)
    vault.save()
    info(f"Deleted {display_name(name)} from the vault.")
    return 0


def cmd_export_key(args: argparse.Namespace) -> int:
    vault = unlock_vault()
    path = atrest.export_key(vault, args.site, args.path)
    print(f"Wrote the encryption key of {display_name(args.site)} to "
          f"{display_name(str(path))} (mode 0600).")
    info("Keep this file away from this machine (and away from the server): whoever has it "
         "can decrypt the site's files; without it nobody can.")
    return 0


def cmd_import_key(args: argparse.Namespace) -> int:
    atrest.read_key_file(args.path)  # a bad file fails before the vault is touched
    vault = unlock_vault(create=True)
    assert vault is not None
    outcome = atrest.import_key(vault, args.site, args.path)
    where = key_secret_name(args.site)
    if outcome.imported:
        print(f"Imported the encryption key of {display_name(args.site)} into the vault "
              f"({display_name(where)}).")
    else:
        print(f"The vault already holds this key for {display_name(args.site)}; unchanged.")
    return 0


__all__ = ["PASSPHRASE_ENV", "open_vault_unattended", "register_vault_commands", "unlock_vault"]
