"""Reading DICOM headers only: a local folder, a zip, or a remote folder over SFTP.

Every read stops before the pixel data (``dcmread(stop_before_pixels=True, defer_size=...)``):
the summary and the confidentiality check need the header, never the image. A header is parsed
from a sparse in-memory view of the file: the first :data:`HEAD` bytes are fetched; when pydicom
asks for bytes that are not there yet (a longer header, or the tag after a deferred large
value), exactly that range is fetched (at least :data:`HEAD` bytes from where it starts) and the
parse starts again. So a remote read moves the header plus at most a few KiB per file, whatever
the image size, and a large deferred value (a vendor's private blob) is skipped, not
downloaded. Remote files are read many at a time (:data:`PARALLEL`, bounded by the server's
open-handle limit when it reports one), found with the one safe walker
(:func:`backend.remote.walk`: no symlinks followed, hostile names skipped and reported).

A file that is not DICOM (no ``DICM`` prefix after the 128-byte preamble: reports, PDFs,
``DICOMDIR``-less raw datasets) is kept as a :class:`FileHeader` with ``dataset=None`` and the
reason, so callers can list non-DICOM files. Local folders are read with the case packer's
collector (:func:`backend.cases.packer.collect`), so a summary describes exactly what
``case send`` would pack.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import warnings
import zipfile
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncssh
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from backend import remote
from backend.errors import FerryError, RemoteNotFoundError, UsageError
from backend.names import display_name

HEAD = 64 * 1024  # first read of every file, and the least extra read when more is needed
PARALLEL = 64  # remote files read at once (bench/bench_dicom.py: 32 -> 64 saves a third)
DEFER = 64 * 1024  # values longer than this are not loaded (their bytes are not even fetched)
MAX_HEADER = 16 << 20  # refuse to fetch more than this for one header
_MAX_ROUNDS = 64
# pydicom re-opens ``fp.name`` to load a deferred value; for an in-memory view that must fail
# loudly instead of reading some other file that happens to have that name.
_NO_FILE = "\0ferry-dicom-header-view"


@dataclass
class FileHeader:
    """One file of a case: its DICOM header, or why it has none (``dataset is None``)."""

    relpath: str  # POSIX, relative to the folder or zip; validated names
    size: int
    dataset: Dataset | None = field(default=None, repr=False)
    reason: str = ""  # display-safe: why this file is not (readable) DICOM
    bytes_read: int = 0  # bytes fetched to read the header
    member: str = ""  # zip sources: the member's name as stored (relpath is the safe form)

    @property
    def is_dicom(self) -> bool:
        return self.dataset is not None


@dataclass
class HeaderSet:
    """The headers of every file of one case, plus what was not looked at."""

    source: str  # display label: a path or SITE:PATH
    files: list[FileHeader]
    skipped: list[str] = field(default_factory=list)  # symlinks, special files, hostile names
    bytes_read: int = 0

    @property
    def dicom(self) -> list[FileHeader]:
        return [f for f in self.files if f.dataset is not None]

    @property
    def non_dicom(self) -> list[FileHeader]:
        return [f for f in self.files if f.dataset is None]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


class _NeedBytes(Exception):
    """Raised inside pydicom's read when a range of the file has not been fetched yet."""


class _SparseView:
    """A read-only, seekable file over the fetched ranges of a file of ``total`` bytes."""

    name = _NO_FILE

    def __init__(self, total: int) -> None:
        self.total = total
        self.pos = 0
        self.ranges: list[tuple[int, bytes]] = []
        self.missing: tuple[int, int] | None = None

    def add(self, offset: int, data: bytes) -> None:
        self.ranges.append((offset, data))
        self.ranges.sort(key=lambda r: r[0])

    def fetched(self) -> int:
        return sum(len(d) for _o, d in self.ranges)

    # file protocol used by pydicom
    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.total}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        start = self.pos
        end = self.total if size is None or size < 0 else min(self.total, start + size)
        if start >= end:
            return b""
        out = bytearray()
        cursor = start
        for offset, data in self.ranges:
            if offset <= cursor < offset + len(data):
                take = data[cursor - offset : end - offset]
                out += take
                cursor += len(take)
                if cursor >= end:
                    break
        if cursor < end:
            self.missing = (cursor, end)
            raise _NeedBytes
        self.pos = end
        return bytes(out)

    def close(self) -> None:
        return None


def _parse(view: _SparseView) -> Dataset | None:
    """The header, or None when ``view`` lacks bytes (``view.missing`` says which)."""
    view.missing = None
    view.pos = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(view, stop_before_pixels=True, defer_size=DEFER)
    except InvalidDicomError:
        if view.missing is not None:
            return None
        raise _NotDicom("not DICOM (no DICM prefix after the 128-byte preamble)") from None
    except Exception as exc:  # pydicom wraps our _NeedBytes (even as OSError) when it can
        if view.missing is not None:
            return None
        raise _NotDicom(f"unreadable DICOM header: {display_name(str(exc))[:200]}") from None
    if view.missing is not None:  # pydicom swallowed the short read: parse again with more
        return None
    return ds


class _NotDicom(Exception):
    pass


def header_steps(
    total: int, head: int = HEAD
) -> Generator[tuple[int, int], bytes, tuple[Dataset | None, str, int]]:
    """Drive a header read: yields (offset, length) to fetch, is sent the bytes, and returns
    (dataset or None, reason, bytes fetched). Shared by the sync and async readers."""
    view = _SparseView(total)
    want = (0, min(head, total))
    for _round in range(_MAX_ROUNDS):
        offset, length = want
        data = yield offset, length
        view.add(offset, data)
        if len(data) < length:  # the file is shorter than its listed size
            view.total = offset + len(data)
        try:
            ds = _parse(view)
        except _NotDicom as exc:
            return None, str(exc), view.fetched()
        if ds is not None:
            return ds, "", view.fetched()
        assert view.missing is not None
        start, end = view.missing
        want = (start, min(view.total, max(end, start + head)) - start)
        if view.fetched() + want[1] > MAX_HEADER:
            return None, f"header larger than {MAX_HEADER >> 20} MiB: not read", view.fetched()
    return None, "header needs too many reads: not read", view.fetched()


def read_header_sync(fetch: Callable[[int, int], bytes], total: int,
                     head: int = HEAD) -> tuple[Dataset | None, str, int]:
    steps = header_steps(total, head)
    request = next(steps)
    try:
        while True:
            request = steps.send(fetch(*request))
    except StopIteration as done:
        found: tuple[Dataset | None, str, int] = done.value  # StopIteration.value is Any
        return found


async def read_header_async(fetch: Callable[[int, int], Awaitable[bytes]], total: int,
                            head: int = HEAD) -> tuple[Dataset | None, str, int]:
    steps = header_steps(total, head)
    request = next(steps)
    try:
        while True:
            request = steps.send(await fetch(*request))
    except StopIteration as done:
        found: tuple[Dataset | None, str, int] = done.value  # StopIteration.value is Any
        return found


# ----------------------------------------------------------------------------- local folder


def _local_file(relpath: str, path: Path, size: int) -> FileHeader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, defer_size=DEFER)
    except InvalidDicomError:
        return FileHeader(relpath, size, reason="not DICOM (no DICM prefix after the "
                          "128-byte preamble)")
    except OSError as exc:
        return FileHeader(relpath, size, reason=f"unreadable: {exc.strerror or exc}")
    except Exception as exc:
        return FileHeader(relpath, size,
                          reason=f"unreadable DICOM header: {display_name(str(exc))[:200]}")
    return FileHeader(relpath, size, ds)


def read_folder(folder: Path) -> HeaderSet:
    """The headers of every regular file under ``folder`` (blocking: call from a thread)."""
    from backend.cases.packer import collect

    folder = Path(folder)
    try:
        st = os.stat(folder, follow_symlinks=False)
    except FileNotFoundError:
        raise RemoteNotFoundError(f"no such folder: {folder}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{folder} is not a folder (give a study folder or a .zip)")
    try:
        files, skipped = collect(folder)
    except OSError as exc:
        raise UsageError(f"cannot read {folder}: {exc.strerror or exc}") from None
    headers = [_local_file(arc, path, fst.st_size) for arc, path, fst in files]
    return HeaderSet(source=str(folder), files=headers,
                     skipped=[f"{display_name(s)}: not a regular file" for s in skipped])


# ----------------------------------------------------------------------------- zip


def _member_name(name: str) -> str | None:
    """A zip member's name as safe POSIX parts, or None for a name that could escape."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or ".." in parts or any("\0" in p for p in parts):
        return None
    return "/".join(parts)


def read_zip(path: Path | IO[bytes], head: int = HEAD, *, label: str = "") -> HeaderSet:
    """The headers of every member of the zip at ``path`` (or in the seekable binary stream
    ``path``, e.g. a remote zip read into memory: then ``label`` names it); members are read
    (decompressed) only up to the end of their header, nothing is written to disk (blocking:
    call from a thread)."""
    if isinstance(path, str | Path):
        path = Path(path)
        if not path.is_file():
            raise RemoteNotFoundError(f"no such file: {path}")
        label = label or str(path)
    headers: list[FileHeader] = []
    skipped: list[str] = []
    total_read = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                rel = _member_name(info.filename)
                if rel is None:
                    skipped.append(f"{display_name(info.filename)}: unsafe member name")
                    continue
                mode = info.external_attr >> 16
                if mode and stat.S_ISLNK(mode):
                    skipped.append(f"{display_name(rel)}: symlink member")
                    continue
                with zf.open(info) as fh:

                    def fetch(offset: int, length: int, fh: IO[bytes] = fh) -> bytes:
                        fh.seek(offset)
                        return fh.read(length)

                    try:
                        ds, reason, got = read_header_sync(fetch, info.file_size, head)
                    except (zipfile.BadZipFile, OSError, EOFError) as exc:
                        ds, reason, got = None, f"unreadable zip member: {exc}", 0
                total_read += got
                headers.append(FileHeader(rel, info.file_size, ds, reason, got, info.filename))
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{display_name(label)} is not a readable zip: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {display_name(label)}: {exc.strerror or exc}") from None
    return HeaderSet(source=label, files=headers, skipped=skipped, bytes_read=total_read)


def read_local(path: Path) -> HeaderSet:
    """A folder, a ``.zip`` or one file (blocking: call from a thread)."""
    path = Path(path)
    if path.is_file() and not path.is_symlink():
        if zipfile.is_zipfile(path):
            return read_zip(path)
        size = path.stat().st_size
        return HeaderSet(source=str(path), files=[_local_file(path.name, path, size)])
    return read_folder(path)


# ----------------------------------------------------------------------------- remote


async def read_remote(
    sftp: asyncssh.SFTPClient,
    top: str,
    *,
    label: str = "",
    head: int = HEAD,
    parallel: int = PARALLEL,
) -> HeaderSet:
    """The headers of every regular file under the remote folder ``top`` (or of ``top`` itself
    when it is a file), reading only the first bytes of each, ``parallel`` files at a time."""
    top_entry = await remote.stat_path(sftp, top)
    skipped: list[str] = []
    if top_entry.kind not in ("file", "dir"):
        raise UsageError(f"{display_name(top)} is a {top_entry.kind}, not a folder or file")
    base = top if top_entry.kind == "dir" else (posixpath.dirname(top.rstrip("/")) or "/")

    bound = parallel
    max_handles = getattr(sftp.limits, "max_open_handles", 0) or 0
    if max_handles:
        bound = max(1, min(parallel, max_handles - 4))
    gate = asyncio.Semaphore(bound)

    async def one(item: remote.WalkItem) -> FileHeader:
        path = posixpath.join(base, *item.parts)
        async with gate:
            try:
                with remote.sftp_errors(path):
                    async with sftp.open(path, "rb") as fh:

                        async def fetch(offset: int, length: int) -> bytes:
                            data = await fh.read(length, offset)
                            return data if isinstance(data, bytes) else data.encode()

                        ds, reason, got = await read_header_async(fetch, item.entry.size, head)
            except FerryError as exc:
                return FileHeader(item.relpath, item.entry.size, reason=exc.message)
        return FileHeader(item.relpath, item.entry.size, ds, reason, got)

    tasks: list[asyncio.Task[FileHeader]] = []
    async with asyncio.TaskGroup() as group:
        if top_entry.kind == "file":
            tasks.append(group.create_task(
                one(remote.WalkItem(parts=(top_entry.name,), entry=top_entry))))
        else:
            # files are read while the walker lists the next folders: over a WAN the walk
            # alone is a few round trips per folder
            async for item in remote.walk(sftp, top, rejected=skipped):
                if item.entry.kind == "file":
                    tasks.append(group.create_task(one(item)))
                elif item.entry.kind != "dir":
                    skipped.append(f"{display_name(item.relpath)}: {item.entry.kind}, not read")
    headers = sorted((t.result() for t in tasks), key=lambda h: h.relpath)
    return HeaderSet(
        source=label or top,
        files=headers,
        skipped=skipped,
        bytes_read=sum(h.bytes_read for h in headers),
    )


MAX_REMOTE_ZIP = 512 << 20  # a remote zip is checked in memory up to this size


async def read_remote_zip(sftp: asyncssh.SFTPClient, path: str, size: int, *, label: str = "",
                          cap: int = MAX_REMOTE_ZIP) -> HeaderSet:
    """The headers of a remote zip (its members' DICOM headers), read into memory: a zip's
    directory is at its end and members are compressed, so unlike a folder the whole file is
    read (never written to disk). Refused over ``cap`` bytes."""
    import io

    if size > cap:
        raise UsageError(
            f"{display_name(label or path)} is {size} bytes: too large to check in memory "
            f"(over {cap >> 20} MiB)",
            hint="download it and share the local copy, which is checked on disk")
    buf = io.BytesIO()
    with remote.sftp_errors(path):
        async with sftp.open(path, "rb") as fh:
            while chunk := await remote.read_bytes(fh, 1 << 20):
                buf.write(chunk)
    buf.seek(0)
    headers = await asyncio.to_thread(read_zip, buf, label=label or path)
    headers.bytes_read = buf.tell() or size
    return headers
