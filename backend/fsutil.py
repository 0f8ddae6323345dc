"""Safe local file operations: private dirs, atomic writes, exclusive no-follow creation.

One place for the file-system rules of docs/architecture.md §4: secret-bearing files are 0600
in 0700 dirs and written atomically (temp, fsync, rename); files named by a server are created
exclusively, never through a symlink, and only under the chosen local root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from backend.errors import UnsafeNameError


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; a directory Ferry creates is 0700."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    return path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, rename.

    A reader sees the old content or the new, never a mix; a crash leaves the old file intact.
    """
    path = Path(path)
    ensure_private_dir(path.parent)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an advisory exclusive lock (flock) on ``lock_path`` (created 0600) for the block."""
    ensure_private_dir(Path(lock_path).parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def safe_join(root: Path, *parts: str) -> Path:
    """Join untrusted relative name parts under ``root`` and prove the result stays inside it.

    Raises :class:`UnsafeNameError` if any part is unsafe or the result escapes ``root``
    (including through an existing symlink in the path).
    """
    from backend.names import validate_name

    root_resolved = Path(root).resolve()
    for part in parts:
        validate_name(part)
    candidate = root_resolved.joinpath(*parts)
    resolved = candidate.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise UnsafeNameError(f"refusing to write outside {root}: {'/'.join(parts)!r}")
    return candidate


def open_exclusive(path: Path, mode: int = 0o600) -> int:
    """Create ``path`` for writing, failing if it exists or is a symlink. Returns an fd."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def safe_local_mode(remote_mode: int | None, default: int = 0o644) -> int:
    """The permission bits to apply locally for a file whose server-side mode is ``remote_mode``.

    Never setuid/setgid/sticky, never group/world-writable (docs/architecture.md §4 item 4).
    """
    if remote_mode is None:
        return default
    return remote_mode & 0o755


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (the owner of a lock, a job or a staging folder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped) is dead for our purposes
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[-1].split()
        if fields and fields[0] == b"Z":
            return False
    return True
