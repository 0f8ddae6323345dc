"""SSH key pairs for sites: generation under ``$FERRY_HOME/keys``, passphrase detection, and
the file-mode check every face uses before a private key is read (:func:`check_key_mode`).

``generate_keypair`` writes ``keys/<name>`` (OpenSSH private key, 0600, optionally encrypted)
and ``keys/<name>.pub`` (one public-key line for the provider's ``authorized_keys``). Keys are
never overwritten: each file is written under a temporary name and hard-linked into place,
which fails if the final name exists, so a reader never sees half a key.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import Literal

import asyncssh

from backend import paths
from backend.errors import ConfigError
from backend.fsutil import open_exclusive
from backend.log import register_secret

KeyKind = Literal["ed25519", "rsa", "ecdsa"]
KEY_KINDS: dict[str, tuple[str, dict[str, int]]] = {
    "ed25519": ("ssh-ed25519", {}),
    "rsa": ("ssh-rsa", {"key_size": 4096}),
    "ecdsa": ("ecdsa-sha2-nistp256", {}),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def key_comment(name: str) -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "localhost"
    return f"ferry-{name}@{host}"


def generate_keypair(
    kind: KeyKind, name: str, passphrase: str | None = None
) -> tuple[Path, str]:
    """Create a new key pair; returns (private key path, public key line)."""
    if kind not in KEY_KINDS:
        raise ConfigError(f"unknown key type {kind!r}: use one of {', '.join(KEY_KINDS)}")
    if not _NAME_RE.match(name or "") or name.endswith(".pub"):
        raise ConfigError(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )
    directory = paths.keys_dir()
    private_path = directory / name
    public_path = directory / f"{name}.pub"
    for existing in (private_path, public_path):
        if existing.exists() or existing.is_symlink():
            raise ConfigError(
                f"{existing} already exists",
                hint="choose another --name; Ferry never overwrites a key",
            )
    alg, options = KEY_KINDS[kind]
    comment = key_comment(name)
    key = asyncssh.generate_private_key(alg, comment=comment, **options)
    if passphrase:
        register_secret(passphrase)
        private = key.export_private_key("openssh", passphrase=passphrase)
    else:
        private = key.export_private_key("openssh")
    public_line = key.export_public_key("openssh").decode("ascii").strip()
    _publish(private_path, private, 0o600)
    try:
        _publish(public_path, (public_line + "\n").encode("ascii"), 0o644)
    except BaseException:
        with contextlib.suppress(OSError):
            private_path.unlink()
        raise
    return private_path, public_line


def check_key_mode(path: Path | str) -> None:
    """Refuse a private key file that group or others may read or write.

    OpenSSH refuses such a key ("UNPROTECTED PRIVATE KEY FILE": it checks ``mode & 0o077`` on
    a key the user owns), and a provider's instructions tell users to ``chmod 600`` it; Ferry
    applies the same rule in ``ferry sites add/edit``, the TUI site form and at every connect
    (backend/ssh.py), so a key that works in one place works everywhere. A key owned by
    another user (e.g. root, shared through a group) is left to the file system, as OpenSSH
    does. Raises :class:`ConfigError` (exit 3) naming the exact fix; docs/security.md.
    """
    try:
        st = os.stat(Path(path).expanduser())
    except OSError:
        return  # missing or unreadable: the reader reports that with its own message
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == os.getuid() and mode & 0o077:
        raise ConfigError(
            f"UNPROTECTED PRIVATE KEY FILE: {path} has mode {mode:04o}, so others on this "
            "machine can read it; Ferry, like OpenSSH, refuses to use it",
            hint=f"chmod 600 {path}",
        )


def key_needs_passphrase(path: Path | str) -> bool:
    """True if the private key file at ``path`` is encrypted (needs its passphrase)."""
    check_key_mode(path)
    try:
        asyncssh.read_private_key(str(Path(path).expanduser()))
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower():
            return True
        raise ConfigError(f"{path}: not a private key Ferry can read ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    return False


def _publish(final: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temp name, fsync, then link it to ``final`` (fails if it exists)."""
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
    fd = open_exclusive(tmp, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise ConfigError(
                f"{final} already exists", hint="choose another --name; Ferry never overwrites"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
