"""Symmetric key files: 32 random bytes, created exclusively with mode 0600.

A key file is the alternative to a passphrase for the encryption container: raw key material,
no encoding, nothing else in the file. ``ferry keygen --symmetric FILE`` calls
:func:`generate_key_file`; everything that accepts ``--key-file`` calls :func:`read_key_file`;
every new key file (``ferry vault export-key`` too) is written by :func:`write_new_key_file`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from backend.errors import ConfigError, IntegrityError, PermissionDeniedError, RemoteNotFoundError
from backend.fsutil import open_exclusive

KEY_SIZE = 32
"""Bytes of key material in a key file (AES-256)."""


def generate_key_file(path: Path) -> None:
    """Write 32 CSPRNG bytes to ``path``, created exclusively (never overwritten) with 0600."""
    write_new_key_file(Path(path), secrets.token_bytes(KEY_SIZE))


def write_new_key_file(path: Path, key: bytes) -> Path:
    """Write ``key`` to a new file ``path``: created exclusively (an existing file is never
    overwritten) with mode 0600, fsynced; on failure no partial file is left. Used by
    :func:`generate_key_file` and by ``ferry vault export-key`` (backend/atrest.py)."""
    try:
        fd = open_exclusive(path, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists", hint="choose another name; Ferry never overwrites a key"
        ) from None
    except FileNotFoundError:
        raise RemoteNotFoundError(f"folder {path.parent} does not exist") from None
    except PermissionError:
        raise PermissionDeniedError(f"cannot create {path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(key)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        raise
    os.close(fd)
    return path


def read_key_bytes(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` (a key file), with the one-line
    errors every key reader gives: missing (exit 9), unreadable (10), not a regular file (3)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise RemoteNotFoundError(f"key file {path} does not exist") from None
    except PermissionError:
        raise PermissionDeniedError(f"cannot read key file {path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"cannot open key file {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"key file {path} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_key_file(path: Path) -> bytes:
    """The 32-byte key stored in ``path``.

    Raises :class:`RemoteNotFoundError` if missing, :class:`ConfigError` if it is not a regular
    file or cannot be read, :class:`IntegrityError` if it does not hold exactly 32 bytes.
    """
    path = Path(path)
    data = read_key_bytes(path, KEY_SIZE + 1)
    if len(data) != KEY_SIZE:
        raise IntegrityError(
            f"key file {path} holds {len(data) if len(data) <= KEY_SIZE else 'more than 32'}"
            f" bytes, expected exactly {KEY_SIZE}",
            hint="create one with 'ferry keygen --symmetric FILE'",
        )
    return data
