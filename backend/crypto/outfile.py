"""Local file plumbing for the encryption container: open the source, write the result.

:func:`atomic_output` is how every encrypted or decrypted file reaches its final name: a
temporary file created exclusively (0600, never through a symlink) in the destination folder,
fsynced, then renamed into place only if the whole write succeeded; on any failure it is
removed. Large outputs are flushed to disk in the background while they are written, so the
final fsync before the rename has little left to do.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from backend.errors import FerryError, PermissionDeniedError, RemoteNotFoundError, UsageError
from backend.fsutil import open_exclusive

FLUSH_EVERY = 64 << 20
"""Start a background ``fdatasync`` after this many bytes written."""


def os_error(exc: OSError, path: Path, doing: str) -> FerryError:
    """The FerryError a user should see for ``exc`` while ``doing`` ``path``."""
    if isinstance(exc, FileNotFoundError):
        return RemoteNotFoundError(f"{path} does not exist")
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"cannot {doing} {path}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{path} is a folder, not a file")
    return FerryError(f"cannot {doing} {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[io.FileIO]:
    """``path`` opened for unbuffered binary reading, OS errors turned into FerryErrors."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise os_error(exc, path, "read") from None
    with fh:
        yield fh


def refuse_same_file(src: Path, dst: Path) -> None:
    """Never write a result onto its own source (docs/architecture.md §4 item 6)."""
    with contextlib.suppress(OSError):
        if dst.exists() and os.path.samefile(src, dst):
            raise UsageError(f"refusing to write {dst} onto its own source")


def _exists(path: Path) -> UsageError:
    return UsageError(f"{path} already exists", hint="choose another output or overwrite it")


def _publish(tmp: Path, dst: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # atomic "create only if absent"
    except FileExistsError:
        raise _exists(dst) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if dst.exists() or dst.is_symlink():
            raise _exists(dst) from None
        os.replace(tmp, dst)  # no hard links here: check-then-rename is the best we have
        return
    os.unlink(tmp)


class DurableWriter:
    """An unbuffered writer on ``fd`` that keeps writeback going in a background thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def write(self, data: bytes | memoryview) -> int:
        n = os.write(self._fd, data)
        self._pending += n
        if self._pending >= FLUSH_EVERY:
            self._pending = 0
            if self._thread is None:
                self._thread = threading.Thread(target=self._flusher, daemon=True,
                                                name="ferry-writeback")
                self._thread.start()
            self._wake.set()
        return n

    def _flusher(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._error = exc
                return

    def stop(self) -> None:
        """Stop the background writeback thread (the descriptor stays open)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def fileno(self) -> int:
        return self._fd

    def sync(self) -> None:
        """Stop the flusher and fsync: everything written is on disk when this returns."""
        self.stop()
        if self._error is not None:
            raise self._error
        os.fsync(self._fd)

    def close(self) -> None:
        self.stop()
        os.close(self._fd)


@contextlib.contextmanager
def atomic_output(dst: Path, overwrite: bool) -> Iterator[DurableWriter]:
    """A 0600 temporary file next to ``dst``, renamed onto it only if the block succeeds."""
    if not overwrite and (dst.exists() or dst.is_symlink()):
        raise _exists(dst)
    tmp = dst.parent / f".ferry-{secrets.token_hex(8)}.part"
    try:
        fd = open_exclusive(tmp, 0o600)
    except FileNotFoundError:
        raise RemoteNotFoundError(f"folder {dst.parent} does not exist") from None
    except OSError as exc:
        raise os_error(exc, dst.parent, "write in") from None
    writer = DurableWriter(fd)
    try:
        try:
            yield writer
            writer.sync()
        finally:
            writer.close()
        _publish(tmp, dst, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(dst.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
