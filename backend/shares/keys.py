"""The share server key: wraps every per-share key (AES-256-GCM) and signs download tickets.

The key file (``$FERRY_HOME/share-server.key``, 32 random bytes, 0600) is generated on first
start. A per-share key is stored only wrapped by it, bound to the share id as associated data,
in the metadata store, never next to the blob; losing either the key file or the wrapped key
makes the blob unreadable, which is how deletion is made real.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.errors import ConfigError, IntegrityError
from backend.fsutil import atomic_write

KEY_BYTES = 32
_NONCE = 12


def server_key_file() -> Path:
    from backend.paths import ferry_home

    return ferry_home() / "share-server.key"


class ServerKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError("share server key must be 32 bytes")
        self._aead = AESGCM(key)
        self._mac_key = hmac.new(key, b"ferry share tickets v1", hashlib.sha256).digest()
        self._derive_key = hmac.new(key, b"ferry share derived keys v1", hashlib.sha256).digest()

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> ServerKey:
        path = path or server_key_file()
        if not path.exists():
            atomic_write(path, os.urandom(KEY_BYTES), mode=0o600)
        data = path.read_bytes()
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} is readable by other users", hint=f"chmod 600 {path}")
        return cls(data)

    def wrap(self, share_key: bytes, share_id: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, share_key, share_id.encode())

    def unwrap(self, wrapped: bytes, share_id: str) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], share_id.encode())
        except InvalidTag:
            raise IntegrityError(f"the key of share {share_id} does not unwrap") from None

    def sign(self, message: str) -> str:
        return hmac.new(self._mac_key, message.encode(), hashlib.sha256).hexdigest()

    def derive(self, label: str) -> bytes:
        """A 32-byte key for ``label`` (e.g. the audit head of a PostgreSQL store), bound to
        this server key and never stored."""
        return hmac.new(self._derive_key, label.encode(), hashlib.sha256).digest()

    def check(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)
