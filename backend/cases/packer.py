"""Packing a local study (a folder, e.g. a DICOM series tree) into one upload-ready zip.

Streaming and constant-memory: each file is copied into the archive in 1 MiB chunks while its
SHA-256 of the *zip* is computed on the way out, so the only extra disk space is the zip
itself. Entries are the folder's regular files, relative to it, in a deterministic order
(sorted by their POSIX path); symlinks and special files are never followed or packed (they are
listed in :attr:`PackResult.skipped`). ZIP64 records are written for any file whose size is
over ``zip64_threshold`` (default: the 4 GiB zip limit; tests pass a small value) and the
central directory switches to ZIP64 by itself when it has to. The zip is written under a
temporary name next to its destination and renamed only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from backend.errors import RemoteNotFoundError, UsageError
from backend.fsutil import open_exclusive

CHUNK = 1 << 20
ZIP64_LIMIT = zipfile.ZIP64_LIMIT
# zip timestamps cannot be before 1980
_MIN_DATE = (1980, 1, 1, 0, 0, 0)

PackProgress = Callable[[int, int], None]  # (bytes packed, bytes total)


@dataclass
class PackResult:
    path: Path
    size: int
    sha256: str
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # symlinks and special files, not packed


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        """Nothing to do: ZipFile never closes a file object it was given (the caller's
        ``with os.fdopen(...)`` closes the real file)."""


def collect(source: Path) -> tuple[list[tuple[str, Path, os.stat_result]], list[str]]:
    """The regular files under ``source`` as (arcname, path, stat), sorted; plus skipped names.

    Never follows a symlink (not even a symlinked sub-folder).
    """
    files: list[tuple[str, Path, os.stat_result]] = []
    skipped: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            arc = f"{prefix}{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                visit(Path(entry.path), arc + "/")
            elif stat.S_ISREG(st.st_mode):
                files.append((arc, Path(entry.path), st))
            else:
                skipped.append(arc)

    visit(source, "")
    files.sort(key=lambda item: item[0])
    return files, skipped


def pack_folder(
    source: Path,
    dest: Path,
    *,
    zip64_threshold: int = ZIP64_LIMIT,
    progress: PackProgress | None = None,
) -> PackResult:
    """Pack the regular files of ``source`` into a new zip at ``dest`` (never overwritten)."""
    source = Path(source)
    try:
        st = os.stat(source, follow_symlinks=False)
    except FileNotFoundError:
        raise RemoteNotFoundError(f"no such folder: {source}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{source} is not a folder (give a study folder or a .zip)")
    files, skipped = collect(source)
    if not files:
        raise UsageError(f"{source} has no files to send")
    total = sum(s.st_size for _a, _p, s in files)
    tmp = dest.with_name(f".{dest.name}.packing")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # our own leftover from an interrupted pack
    fd = open_exclusive(tmp)
    done = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _HashingWriter(raw)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                for arc, path, fst in files:
                    info = zipfile.ZipInfo(arc, date_time=_zip_time(fst.st_mtime))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = (stat.S_IFREG | (fst.st_mode & 0o755)) << 16
                    info.file_size = fst.st_size
                    force = fst.st_size > zip64_threshold
                    with open(path, "rb") as src, zf.open(info, "w", force_zip64=force) as dst:
                        while chunk := src.read(CHUNK):
                            dst.write(chunk)
                            done += len(chunk)
                            if progress is not None:
                                progress(done, total)
            raw.flush()
            os.fsync(raw.fileno())
        if os.path.lexists(dest):
            raise UsageError(f"{dest} already exists; not overwriting it")
        os.rename(tmp, dest)
    except RuntimeError as exc:  # zipfile: a file grew past its stat size while packing
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UsageError(f"{source}: a file changed while packing ({exc}); try again") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return PackResult(
        path=dest,
        size=out.size,
        sha256=out.digest.hexdigest(),
        files=[arc for arc, _p, _s in files],
        skipped=skipped,
    )


def pack_with(dest: Path, fill: Callable[[zipfile.ZipFile], list[str]]) -> PackResult:
    """A new zip at ``dest`` whose members ``fill`` writes (it returns their names), written
    like :func:`pack_folder`: temp name, SHA-256 on the way out, fsync, rename, never
    overwriting. Used for one study of a split folder and for de-identified copies
    (backend/cases/dicomsend.py)."""
    tmp = dest.with_name(f".{dest.name}.packing")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = open_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _HashingWriter(raw)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                names = fill(zf)
            raw.flush()
            os.fsync(raw.fileno())
        if os.path.lexists(dest):
            raise UsageError(f"{dest} already exists; not overwriting it")
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return PackResult(path=dest, size=out.size, sha256=out.digest.hexdigest(), files=names)


def copy_into(zf: zipfile.ZipFile, source: Path, arcname: str, *,
              zip64_threshold: int = ZIP64_LIMIT) -> None:
    """Stream one regular file into ``zf`` as ``arcname`` (1 MiB chunks)."""
    fst = os.stat(source, follow_symlinks=False)
    if not stat.S_ISREG(fst.st_mode):
        raise UsageError(f"{source} is not a regular file (symlinks are not sent)")
    info = zipfile.ZipInfo(arcname, date_time=_zip_time(fst.st_mtime))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | (fst.st_mode & 0o755)) << 16
    info.file_size = fst.st_size
    with open(source, "rb") as src, zf.open(info, "w",
                                            force_zip64=fst.st_size > zip64_threshold) as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)


def check_zip(path: Path) -> list[str]:
    """The member names of an existing zip the user wants to send as-is; refuses non-zips."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise RemoteNotFoundError(f"no such file: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file (symlinks are not sent)")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{path} is not a readable zip: {exc}") from None
    if bad is not None:
        raise UsageError(f"{path} is corrupt: member {bad!r} fails its CRC check")
    return names


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    import time

    t = time.localtime(mtime)
    stamp = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    return max(stamp, _MIN_DATE)
