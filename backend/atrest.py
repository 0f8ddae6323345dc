"""A site's encryption-at-rest key: created or imported into the vault, exported for backup.

The key (32 bytes) lives in the vault as 64 hex digits under ``site/<name>/encryption-key``
(:func:`backend.transfers.crypt.key_secret_name`); the transfer engine reads it through the
key provider :meth:`backend.session.Session.key_for`. Both faces switch encryption on with
one call, :func:`ensure_key` (``ferry sites add/edit --encrypt-at-rest`` and the TUI site
form's "Encrypt at rest" switch). A key is never replaced: files on the server encrypted with
it could no longer be read. Key files (``--encryption-key-file``, ``vault export-key`` /
``import-key``) hold the 32 raw bytes, the format ``ferry keygen --symmetric`` writes; 64 hex
digits on one line are accepted too. See docs/security.md, "Encryption at rest".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from backend.crypto.keys import KEY_SIZE, read_key_bytes, write_new_key_file
from backend.errors import ConfigError, IntegrityError
from backend.transfers.crypt import key_secret_name, parse_key
from backend.vault import Vault


@dataclass(frozen=True)
class KeyOutcome:
    """What :func:`ensure_key` did: ``created`` a new key, ``imported`` one from a file, or
    neither (the vault already held the key)."""

    created: bool = False
    imported: bool = False


def missing_key_error(site_name: str) -> ConfigError:
    return ConfigError(
        f"site {site_name} encrypts at rest but the vault holds no key for it",
        hint=f"restore your backup with 'ferry vault import-key {site_name} --from FILE', or "
        f"create a new key with 'ferry sites edit {site_name} --encrypt-at-rest'",
    )


def read_key(vault: Vault | None, site_name: str) -> bytes:
    """The site's key from ``vault`` (``None``: no vault exists); ConfigError if absent."""
    secret = vault.get(key_secret_name(site_name)) if vault is not None else None
    if secret is None:
        raise missing_key_error(site_name)
    return parse_key(secret, site_name)


def ensure_key(vault: Vault, site_name: str, key_file: Path | str | None = None) -> KeyOutcome:
    """Make sure ``vault`` holds the site's key, creating one (or taking ``key_file``'s).

    Saved at once. An existing key is kept: with no ``key_file`` nothing changes; a
    ``key_file`` holding a different key is refused (ConfigError), since replacing the key
    would make what is already on the server unreadable.
    """
    name = key_secret_name(site_name)
    wanted = read_key_file(key_file) if key_file is not None else secrets.token_bytes(KEY_SIZE)
    stored = vault.store_new(name, wanted.hex())
    if stored != wanted.hex():
        if key_file is not None and parse_key(stored, site_name) != wanted:
            raise ConfigError(
                f"site {site_name} already has a different encryption key in the vault; "
                "it was kept (replacing it would make the files already encrypted with it "
                "unreadable)",
                hint=f"back it up with 'ferry vault export-key {site_name} --to FILE'; to "
                f"really replace it, 'ferry vault remove {name}' first",
            )
        return KeyOutcome()
    return KeyOutcome(created=key_file is None, imported=key_file is not None)


def import_key(vault: Vault, site_name: str, key_file: Path | str) -> KeyOutcome:
    """``ferry vault import-key``: like :func:`ensure_key` with a file."""
    return ensure_key(vault, site_name, key_file)


def export_key(vault: Vault | None, site_name: str, path: Path | str) -> Path:
    """Write the site's key to a new file ``path`` (32 raw bytes, mode 0600, never
    overwrites). Returns the path written."""
    return write_new_key_file(Path(path).expanduser(), read_key(vault, site_name))


def read_key_file(path: Path | str) -> bytes:
    """A 32-byte key from ``path``: 32 raw bytes, or 64 hex digits (one line)."""
    target = Path(path).expanduser()
    data = read_key_bytes(target, 4 * KEY_SIZE)
    if len(data) == KEY_SIZE:
        return data
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise IntegrityError(
            f"key file {target} holds neither 32 raw bytes nor 64 hex digits",
            hint="use a file written by 'ferry vault export-key' or 'ferry keygen --symmetric'",
        )
    return key


def backup_advice(site_name: str) -> list[str]:
    """What to tell the user after a key was created or imported (both faces)."""
    return [
        f"Files uploaded to {site_name} are now encrypted with a key kept only in your vault "
        f"(entry {key_secret_name(site_name)}).",
        "If you lose that key (vault deleted, passphrase forgotten, disk lost), the encrypted "
        "files on the server are lost too: nobody can decrypt them, not even the provider.",
        f"Back it up now, and keep the copy away from this machine: "
        f"ferry vault export-key {site_name} --to FILE",
        f"On another machine: ferry vault import-key {site_name} --from FILE",
    ]
