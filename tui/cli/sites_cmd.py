"""``ferry sites add|list|edit|remove|import-ssh-config``, ``ferry keygen`` and ``ferry vault``.

Thin faces over :class:`backend.sites.store.SiteStore`, :mod:`backend.vault`,
:mod:`backend.sites.sshconfig` and :mod:`backend.keys`. Secrets are read from stdin (one line)
or a no-echo prompt, never from argv, and go only into the vault. ``sites trust`` and
``sites show`` (which open SSH sessions) are added by :mod:`tui.cli.session_cmd`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from backend import atrest, credentials, paths
from backend.errors import ConfigError, UsageError
from backend.keys import KEY_KINDS, generate_keypair, key_needs_passphrase
from backend.names import display_name
from backend.sites.model import (
    CIPHER_PROFILES,
    LAYOUTS,
    SECRET_KINDS,
    SERVER_PROFILES,
    UPLOAD_MODES,
    Site,
    default_user,
)
from backend.sites.model import secret_name as _secret_name
from backend.sites.profile import forget_profile, rename_profile
from backend.sites.store import SiteStore
from backend.transfers.crypt import key_secret_name
from backend.vault import Vault
from tui.cli.output import ask_secret, info, is_interactive, print_json
from tui.cli.vault_cli import open_vault_unattended, register_vault_commands, unlock_vault

# The vault entries of a site that follow it when it is renamed (site/<name>/<kind>).


def register(sub: argparse._SubParsersAction) -> None:
    sites = sub.add_parser(
        "sites", help="manage saved SFTP sites",
        description="Saved sites live in $FERRY_HOME/sites.toml; their passwords and key "
        "passphrases live in the encrypted vault, never in the file or on the command line.",
    )
    sites_sub = sites.add_subparsers(dest="sites_command", metavar="COMMAND")

    p = sites_sub.add_parser("add", help="save a new site")
    p.add_argument("name", metavar="NAME")
    _site_options(p, editing=False)
    p.set_defaults(func=cmd_add)

    p = sites_sub.add_parser("list", help="list saved sites")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sites_sub.add_parser("edit", help="change a saved site (only the options given)")
    p.add_argument("name", metavar="NAME")
    _site_options(p, editing=True)
    p.set_defaults(func=cmd_edit)

    p = sites_sub.add_parser("remove", help="delete a saved site")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remove)

    p = sites_sub.add_parser(
        "import-ssh-config", help="import Host entries from an OpenSSH client config",
        description="Import Host aliases from FILE (default ~/.ssh/config). Existing sites are "
        "never overwritten; wildcards, Match blocks and ProxyCommand hosts are reported.",
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="default: ~/.ssh/config")
    p.set_defaults(func=cmd_import)

    from tui.cli.session_cmd import register_site_commands

    register_site_commands(sites_sub)

    k = sub.add_parser(
        "keygen", help="create an SSH key pair (or a symmetric encryption key file)",
        description="Create an SSH key pair under $FERRY_HOME/keys and print the public key "
        "line to give to the provider; or, with --symmetric FILE, a 32-byte key file for "
        "encryption at rest.",
    )
    k.add_argument("--type", choices=sorted(KEY_KINDS), default="ed25519", dest="key_type")
    k.add_argument("--name", metavar="N", help="file name under $FERRY_HOME/keys "
                   "(default id_TYPE)")
    k.add_argument("--passphrase-stdin", action="store_true",
                   help="encrypt the private key with a passphrase read from stdin")
    k.add_argument("--symmetric", metavar="FILE",
                   help="write a new 32-byte encryption key to FILE instead (never overwrites)")
    k.set_defaults(func=cmd_keygen)

    register_vault_commands(sub)


def _site_options(p: argparse.ArgumentParser, *, editing: bool) -> None:
    p.add_argument("--host", metavar="H", required=not editing, help="server host name or IP")
    p.add_argument("--port", metavar="P", type=int, help="SSH port (default 22)")
    p.add_argument("--user", metavar="U", help="login user (default: your local user)")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--key", metavar="FILE", help="authenticate with this private key file")
    auth.add_argument("--agent", action="store_true", help="authenticate with ssh-agent keys")
    auth.add_argument("--password-stdin", action="store_true",
                      help="password auth; read the password from stdin into the vault")
    p.add_argument("--key-passphrase-stdin", action="store_true",
                   help="read the key's passphrase from stdin into the vault")
    p.add_argument("--cipher-profile", choices=CIPHER_PROFILES)
    p.add_argument("--layout", choices=LAYOUTS, help="case folder layout")
    p.add_argument("--remote-dir", metavar="PATH", help="folder to open after connecting")
    p.add_argument("--jump", metavar="SITE", help="connect through this saved site")
    p.add_argument("--keepalive", metavar="SECONDS", type=int,
                   help="seconds between keepalives (0 disables; default 30)")
    p.add_argument("--server-profile", choices=SERVER_PROFILES,
                   help="what the server can do: auto (detected by 'ferry sites test', the "
                   "default) or a preset; see docs/transfers.md, 'Server profiles'")
    p.add_argument("--encrypt-at-rest", action=argparse.BooleanOptionalAction, default=None,
                   help="encrypt uploads with a key kept in the vault (created now unless "
                   "the vault has one; back it up: 'ferry vault export-key')")
    p.add_argument("--encryption-key-file", metavar="FILE",
                   help="with --encrypt-at-rest: use the key in FILE (from 'ferry vault "
                   "export-key' or 'ferry keygen --symmetric') instead of a new one")
    p.add_argument("--require-deidentified", action=argparse.BooleanOptionalAction, default=None,
                   help="refuse to send or share DICOM that still identifies the patient "
                   "(DICOM PS3.15 Annex E check) unless de-identified or overridden")
    if not editing:
        return
    p.add_argument("--name", dest="new_name", metavar="NEW", help="rename the site")
    p.add_argument("--no-jump", action="store_true", help="stop using a jump host")
    p.add_argument("--upload-mode", choices=UPLOAD_MODES)
    p.add_argument("--temp-suffix", metavar="S", help="suffix of in-progress uploads")
    p.add_argument("--max-parallel", metavar="N", type=int, help="parallel transfers (1-64)")
    p.add_argument("--allow-exec", action=argparse.BooleanOptionalAction, default=None,
                   help="may run sha256sum on the server to verify transfers")


# --------------------------------------------------------------------- helpers


def _read_secret(label: str) -> str:
    """One secret line from stdin, or a no-echo prompt when stdin is a terminal."""
    if sys.stdin is not None and sys.stdin.isatty() and is_interactive():
        value = ask_secret(f"{label}: ")
    else:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        value = line.rstrip("\r\n")
    if not value:
        raise UsageError(f"expected the {label.lower()} on stdin, got an empty line")
    return value


def _checked_key_file(raw: str) -> str:
    path = Path(raw).expanduser().absolute()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"key file {path} does not exist or is not readable")
    key_needs_passphrase(path)  # refuses files that are not private keys
    return str(path)


def _auth_changes(args: argparse.Namespace) -> dict[str, Any]:
    if args.key:
        return {"auth": "key", "key_file": _checked_key_file(args.key)}
    if args.agent:
        return {"auth": "agent", "key_file": None}
    if args.password_stdin:
        return {"auth": "password", "key_file": None}
    return {}


def _common_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for option, fld in (
        ("host", "host"), ("port", "port"), ("user", "user"),
        ("cipher_profile", "cipher_profile"), ("layout", "layout"),
        ("remote_dir", "remote_dir"), ("jump", "jump"), ("keepalive", "keepalive"),
        ("upload_mode", "upload_mode"), ("temp_suffix", "temp_suffix"),
        ("max_parallel", "max_parallel"), ("encrypt_at_rest", "encrypt_at_rest"),
        ("allow_exec", "allow_exec"), ("server_profile", "server_profile"),
        ("require_deidentified", "require_deidentified"),
        ("new_name", "name"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            changes[fld] = value
    if getattr(args, "no_jump", False):
        if "jump" in changes:
            raise UsageError("--jump and --no-jump contradict each other")
        changes["jump"] = None
    changes.update(_auth_changes(args))
    if args.encryption_key_file:
        if args.encrypt_at_rest is False:
            raise UsageError("--encryption-key-file and --no-encrypt-at-rest contradict "
                             "each other")
        atrest.read_key_file(args.encryption_key_file)  # a bad file fails before any change
        changes["encrypt_at_rest"] = True
    return changes


def _store_site_key(vault: Vault | None, args: argparse.Namespace, site_name: str) -> None:
    """``--encrypt-at-rest``: the site's key in the vault (backend/atrest.py), and how to
    back it up."""
    assert vault is not None
    outcome = atrest.ensure_key(vault, site_name, args.encryption_key_file)
    if not (outcome.created or outcome.imported):
        info(f"Encryption at rest: using the key already in the vault for {site_name}.")
        return
    info(("Created a new" if outcome.created else "Imported the") +
         f" encryption-at-rest key for {site_name}.")
    for line in atrest.backup_advice(site_name):
        info(f"  {line}")


def _check_jump_exists(store: SiteStore, site: Site) -> None:
    if site.jump is not None and not store.exists(site.jump):
        raise ConfigError(
            f"jump site {site.jump} is not a saved site", hint="add it first with 'ferry sites add'"
        )


def _read_site_secrets(args: argparse.Namespace, site: Site) -> dict[str, str]:
    secrets: dict[str, str] = {}
    if args.key_passphrase_stdin and site.auth != "key":
        raise UsageError("--key-passphrase-stdin needs key authentication (--key FILE)")
    if args.password_stdin:
        secrets[_secret_name(site.name, "password")] = _read_secret("Site password")
    if args.key_passphrase_stdin:
        secrets[_secret_name(site.name, "passphrase")] = _read_secret("Key passphrase")
    return secrets


def _warn_if_key_locked(site: Site, have_passphrase: bool) -> None:
    if site.auth == "key" and site.key_file and not have_passphrase:
        try:
            locked = key_needs_passphrase(site.key_file)
        except ConfigError:
            return
        if locked:
            info(f"note: {site.key_file} is encrypted; store its passphrase with "
                 f"'ferry sites edit {site.name} --key-passphrase-stdin' or Ferry will ask")


# --------------------------------------------------------------------- commands


def cmd_add(args: argparse.Namespace) -> int:
    store = SiteStore()
    if store.exists(args.name):
        raise ConfigError(
            f"a site named {args.name} already exists",
            hint=f"pick another name or use 'ferry sites edit {args.name}'",
        )
    fields: dict[str, Any] = {"port": 22, "user": default_user(), "auth": "agent"}
    fields.update(_common_changes(args))
    site = Site(name=args.name, **fields)
    site.validate()
    _check_jump_exists(store, site)
    secrets = _read_site_secrets(args, site)
    vault: Vault | None = None
    if secrets or site.encrypt_at_rest:
        vault = unlock_vault(create=True)
        assert vault is not None
        for key, value in secrets.items():
            vault.set(key, value)
        vault.save()
    if site.encrypt_at_rest:
        _store_site_key(vault, args, site.name)
    store.add(site)
    print(f"Added site {display_name(site.name)}: {display_name(site.address)} "
          f"(auth {site.auth})")
    _warn_if_key_locked(site, bool(secrets))
    if not site.host_keys:
        info(f"Next: 'ferry sites trust {site.name}' to check and pin the server's host key.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    sites = SiteStore().list()
    if args.json:
        print_json([
            {**dataclasses.asdict(site), "address": site.address,
             "pinned_keys": len(site.host_keys)}
            for site in sites
        ])
        return 0
    if not sites:
        info("No saved sites yet: 'ferry sites add NAME --host HOST' or "
             "'ferry sites import-ssh-config'.")
        return 0
    rows = [("NAME", "ADDRESS", "AUTH", "LAYOUT", "KEYS", "LAST CONNECTED")]
    for site in sites:
        auth = site.auth + (f" via {site.jump}" if site.jump else "")
        rows.append((site.name, site.address, auth, site.layout, str(len(site.host_keys)),
                     site.last_connected or "never"))
    widths = [max(len(display_name(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [display_name(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    store = SiteStore()
    old = store.get(args.name)
    changes = _common_changes(args)
    if not changes and not args.key_passphrase_stdin:
        raise UsageError("nothing to change", hint="see 'ferry sites edit --help'")
    preview = Site(**{**dataclasses.asdict(old), **changes})
    preview.validate()
    if preview.name != old.name and store.exists(preview.name):
        raise ConfigError(f"cannot rename {old.name} to {preview.name}: that name is taken")
    if preview.jump is not None and preview.jump != old.jump:
        _check_jump_exists(store, preview)
    secrets = _read_site_secrets(args, preview)
    renamed = preview.name != old.name
    encrypting = bool(changes.get("encrypt_at_rest"))
    vault: Vault | None = None
    if secrets or encrypting:
        vault = unlock_vault(create=True)
    elif renamed and Vault.exists(paths.vault_file()) and (
            credentials.needs_vault(old) or old.encrypt_at_rest):
        vault = unlock_vault()
    if vault is not None and renamed:
        for kind in SECRET_KINDS:
            vault.rename(_secret_name(old.name, kind), _secret_name(preview.name, kind))
    if encrypting:
        _store_site_key(vault, args, preview.name)  # saves the renames with it
    site = store.update(old.name, **changes)
    rename_profile(old.name, site.name)
    if vault is not None:
        for key, value in secrets.items():
            vault.set(key, value)
        vault.save()
    what = ", ".join(sorted(k for k in changes if k != "name")) or "secrets"
    if renamed:
        what = f"renamed to {site.name}" + (f"; {what}" if changes.keys() - {"name"} else "")
    print(f"Updated site {display_name(site.name)}: {display_name(what)}")
    if "key_file" in changes:
        _warn_if_key_locked(site, bool(secrets))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = SiteStore()
    store.get(args.name)  # unknown name: fail before touching the vault
    vault = open_vault_unattended()
    site = store.remove(args.name)
    forget_profile(site.name)
    names = [_secret_name(site.name, kind) for kind in ("password", "passphrase")]
    if vault is not None:
        removed = [name for name in names if vault.delete(name)]
        vault.save()
        if removed:
            info(f"Deleted {len(removed)} secret(s) of {site.name} from the vault.")
    elif Vault.exists(paths.vault_file()) and site.auth == "password":
        info(f"note: the vault was not unlocked, so {site.name}'s password stays in it "
             f"(entry {names[0]}); it is harmless and reused if you add the site again.")
    if site.encrypt_at_rest or (vault is not None and key_secret_name(site.name) in vault):
        info(f"note: the encryption key of {site.name} stays in the vault (entry "
             f"{key_secret_name(site.name)}): the site's encrypted files need it. Delete it "
             f"with 'ferry vault remove {key_secret_name(site.name)}' once they are gone.")
    print(f"Removed site {display_name(site.name)}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from backend.sites.sshconfig import import_into_store, parse_ssh_config  # only here

    result = parse_ssh_config(args.file)
    added, existing = import_into_store(result, SiteStore())
    print(f"Imported {len(added)} site(s)" + (":" if added else "."))
    for site in added:
        via = f" via {site.jump}" if site.jump else ""
        key = f" ({site.key_file})" if site.key_file else ""
        print(f"  {display_name(site.name)}  {display_name(site.address)}  "
              f"auth {site.auth}{display_name(key)}{display_name(via)}")
    skipped = existing + result.skipped
    if skipped:
        print(f"Skipped {len(skipped)}:")
        for what, why in skipped:
            print(f"  {display_name(what)[:100]}: {display_name(why)}")
    if result.notes:
        print("Notes:")
    for what, why in result.notes:
        print(f"  {display_name(what)[:100]}: {display_name(why)}")
    if added:
        info("Next: 'ferry sites trust NAME' for each site to check and pin its host key.")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.symmetric:
        if args.passphrase_stdin or args.name:
            raise UsageError("--symmetric takes no --name or --passphrase-stdin")
        from backend.crypto.keys import generate_key_file

        path = Path(args.symmetric).expanduser()
        generate_key_file(path)
        print(f"Wrote a new 32-byte encryption key to {display_name(str(path))} (mode 0600).")
        info("Keep a copy somewhere safe: files encrypted with it cannot be read without it.")
        return 0
    name = args.name or f"id_{args.key_type}"
    passphrase = _read_secret("Key passphrase") if args.passphrase_stdin else None
    private, public_line = generate_keypair(args.key_type, name, passphrase)
    print(public_line)
    info(f"Private key: {private} (mode 0600{', encrypted' if passphrase else ''}).")
    info(f"Public key:  {private}.pub. Give the line above to the provider for "
         "~/.ssh/authorized_keys, then: "
         f"ferry sites add NAME --host HOST --key {private}"
         + (" --key-passphrase-stdin" if passphrase else ""))
    return 0
