"""Encrypted blob storage: the :class:`BlobStore` interface and its folder implementation.

Blobs are already-encrypted container bytes; the store never sees a key or plaintext. A blob is
written under a temporary name and appears under its final name only when complete; readers
get an ordinary binary file object. Another backend (S3) implements the same methods.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Protocol

from backend.errors import ShareError
from backend.fsutil import ensure_private_dir, open_exclusive


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    def new_writer(self, blob_id: str) -> BlobWriter: ...
    def open(self, blob_id: str) -> BinaryIO: ...
    def delete(self, blob_id: str) -> None: ...
    def exists(self, blob_id: str) -> bool: ...
    def cleanup_partial(self) -> int: ...


def _check_id(blob_id: str) -> str:
    if not blob_id or not all(c.isalnum() or c in "-_" for c in blob_id):
        raise ShareError(f"invalid blob id {blob_id!r}")
    return blob_id


class _FileWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.part")
        self._fh = os.fdopen(open_exclusive(self.tmp, 0o600), "wb")

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class FileBlobStore:
    """Blobs as files ``<root>/<blob_id>.fcx`` (default root ``$FERRY_HOME/shares/blobs``)."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from backend.paths import ferry_home

            root = ferry_home() / "shares" / "blobs"
        self.root = ensure_private_dir(Path(root))

    def path(self, blob_id: str) -> Path:
        return self.root / f"{_check_id(blob_id)}.fcx"

    def new_writer(self, blob_id: str) -> _FileWriter:
        return _FileWriter(self.path(blob_id))

    def open(self, blob_id: str) -> BinaryIO:
        try:
            fd = os.open(self.path(blob_id), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ShareError("the shared file is no longer stored") from None
        return os.fdopen(fd, "rb")

    def delete(self, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(blob_id))

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).exists()

    def cleanup_partial(self) -> int:
        """Remove temporary files left by a crash mid-upload. Returns how many."""
        removed = 0
        for p in self.root.glob(".*.part"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        return removed
