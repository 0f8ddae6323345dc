"""The encrypted secret vault: site passwords and key passphrases in ``$FERRY_HOME/vault.bin``.

Works on headless servers with no keyring: the key comes from a master passphrase through
scrypt, and the secrets are one AES-256-GCM sealed JSON object. File layout (all integers
big-endian)::

    magic  b"FERRYVLT"      8 bytes
    version                 1 byte   (1)
    log2(n), r, p           3 bytes  scrypt cost (n >= 2**15; bounded when reading)
    salt                    16 bytes fresh on every save
    nonce                   12 bytes fresh on every save
    ciphertext + GCM tag    the rest

The 40-byte header is the GCM associated data, so changing any of it (including the scrypt
cost) makes the file fail to open. A wrong passphrase and a tampered file are indistinguishable
by design: both raise :class:`VaultError`. Saving is atomic and 0600; concurrent savers take an
advisory lock and merge their own changes into what is on disk. Every secret loaded or set is
registered with the log redactor.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backend.errors import VaultError
from backend.fsutil import atomic_write, exclusive_lock
from backend.log import register_secret

MAGIC = b"FERRYVLT"
VERSION = 1
_HEADER = struct.Struct(">8sBBBB16s12s")
HEADER_SIZE = _HEADER.size
LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_LOG2_N = 20  # 1 GiB of scrypt memory with r=8: refuse anything costlier
_MAX_R = 16
_MAX_P = 4
_MAX_FILE = 16 << 20
MIN_PASSPHRASE = 8

_UNLOCK_FAILED = "wrong master passphrase or damaged vault"


class Vault:
    """An unlocked vault. Changes are kept in memory until :meth:`save`."""

    def __init__(self, path: Path, passphrase: str, secrets_: dict[str, str]) -> None:
        self.path = Path(path)
        self._passphrase = passphrase
        self._secrets = dict(secrets_)
        self._changes: dict[str, str | None] = {}
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")

    # ----------------------------------------------------------------- lifecycle

    @staticmethod
    def exists(path: Path) -> bool:
        return Path(path).is_file()

    @classmethod
    def create(cls, path: Path, passphrase: str) -> Vault:
        """Create an empty vault at ``path``. Refuses to replace an existing one."""
        path = Path(path)
        _check_passphrase(passphrase)
        vault = cls(path, passphrase, {})
        with vault._locked():
            if path.exists():
                raise VaultError(
                    f"a vault already exists at {path}", hint="unlock it instead of creating one"
                )
            vault._write({})
        register_secret(passphrase)
        return vault

    @classmethod
    def open(cls, path: Path, passphrase: str) -> Vault:
        """Unlock the vault at ``path``. Wrong passphrase or tampered file: :class:`VaultError`."""
        path = Path(path)
        register_secret(passphrase)
        return cls(path, passphrase, _read(path, passphrase))

    # ----------------------------------------------------------------- secrets

    def get(self, name: str) -> str | None:
        value = self._secrets.get(name)
        if value is not None:
            register_secret(value)
        return value

    def set(self, name: str, value: str) -> None:
        if not name:
            raise VaultError("a vault entry needs a name")
        if not isinstance(value, str) or value == "":
            raise VaultError(f"refusing to store an empty secret for {name}")
        register_secret(value)
        self._secrets[name] = value
        self._changes[name] = value

    def delete(self, name: str) -> bool:
        """Forget ``name``. Returns whether it was there."""
        present = name in self._secrets
        self._secrets.pop(name, None)
        self._changes[name] = None
        return present

    def rename(self, old: str, new: str) -> bool:
        """Move a secret to a new name (e.g. after renaming a site)."""
        value = self._secrets.get(old)
        if value is None:
            return False
        self.set(new, value)
        self.delete(old)
        return True

    def names(self) -> list[str]:
        return sorted(self._secrets)

    def __contains__(self, name: object) -> bool:
        return name in self._secrets

    def save(self) -> None:
        """Write atomically (0600) with a fresh salt and nonce.

        Under the lock, entries another process saved meanwhile are kept; this vault's own
        changes since it was opened win.
        """
        with self._locked():
            current = _read(self.path, self._passphrase) if self.path.exists() else {}
            for name, value in self._changes.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            self._write(current)
            self._secrets = current
            self._changes.clear()

    def store_new(self, name: str, value: str) -> str:
        """Store ``name`` = ``value`` and save at once, unless the vault on disk (or this
        one) already holds ``name``; returns the value now stored. Used for secrets that must
        never be replaced by accident (a site's at-rest key: backend/atrest.py), even by two
        processes at once."""
        if not value:
            raise VaultError(f"refusing to store an empty secret for {name}")
        with self._locked():
            current = _read(self.path, self._passphrase) if self.path.exists() else {}
            for key, change in self._changes.items():
                if change is None:
                    current.pop(key, None)
                else:
                    current[key] = change
            existing = current.get(name)
            if existing is None:
                register_secret(value)
                current[name] = value
                self._write(current)
            self._secrets = current
            self._changes.clear()
        return current[name]

    def change_passphrase(self, new: str) -> None:
        """Re-encrypt the vault under a new master passphrase (saved at once)."""
        _check_passphrase(new)
        with self._locked():
            current = _read(self.path, self._passphrase) if self.path.exists() else {}
            for name, value in self._changes.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            register_secret(new)
            self._passphrase = new
            self._write(current)
            self._secrets = current
            self._changes.clear()

    # ----------------------------------------------------------------- internals

    def _write(self, data: dict[str, str]) -> None:
        salt = secrets.token_bytes(16)
        nonce = secrets.token_bytes(12)
        header = _HEADER.pack(MAGIC, VERSION, LOG2_N, SCRYPT_R, SCRYPT_P, salt, nonce)
        key = _derive(self._passphrase, salt, LOG2_N, SCRYPT_R, SCRYPT_P)
        plaintext = json.dumps({"version": VERSION, "secrets": data}).encode("utf-8")
        sealed = AESGCM(key).encrypt(nonce, plaintext, header)
        atomic_write(self.path, header + sealed, mode=0o600)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self._lock_path)


def _check_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE:
        raise VaultError(f"the master passphrase must be at least {MIN_PASSPHRASE} characters")


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def _read(path: Path, passphrase: str) -> dict[str, str]:
    try:
        with open(path, "rb") as fh:
            blob = fh.read(_MAX_FILE + 1)
    except FileNotFoundError:
        raise VaultError(
            f"no vault at {path}",
            hint="it is created when you first store a password: "
            "'ferry sites add NAME --host H --password-stdin'",
        ) from None
    except OSError as exc:
        raise VaultError(f"cannot read {path}: {exc.strerror}") from None
    if len(blob) > _MAX_FILE or len(blob) < HEADER_SIZE + 16:
        raise VaultError(_UNLOCK_FAILED)
    header = blob[:HEADER_SIZE]
    magic, version, log2_n, r, p, salt, nonce = _HEADER.unpack(header)
    if magic != MAGIC:
        raise VaultError(f"{path} is not a Ferry vault")
    if version != VERSION:
        raise VaultError(f"{path}: vault format {version} is not supported by this Ferry")
    if not (LOG2_N <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise VaultError(_UNLOCK_FAILED)
    key = _derive(passphrase, salt, log2_n, r, p)
    try:
        plaintext = AESGCM(key).decrypt(nonce, blob[HEADER_SIZE:], header)
    except InvalidTag:
        raise VaultError(
            _UNLOCK_FAILED, hint="retype it, or check FERRY_VAULT_PASSPHRASE_FILE"
        ) from None
    try:
        payload = json.loads(plaintext.decode("utf-8"))
        data = payload["secrets"]
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise VaultError(_UNLOCK_FAILED) from None
    for value in data.values():
        register_secret(value)
    return dict(data)
