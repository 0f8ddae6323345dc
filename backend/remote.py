"""The remote file system as Ferry sees it: safe listings, the one safe walker, operations.

Every name a server sends passes :func:`backend.names.validate_name` here before anything uses
it; hostile names are left out of results and reported in ``rejected`` (display-safe), never
joined to a path. :func:`walk` is the one recursive walker (used by transfers, deletes, cases):
it never follows server symlinks and never leaves the folder it was given, and it stops at the
caps of a :class:`backend.limits.TreeBudget` (entries, depth, bytes). SFTP failures become
typed errors through :func:`translate_sftp_error`. A name that is not valid UTF-8 is listed in
its ``\\xHH`` spelling (backend/names.py), which addresses the server's exact bytes.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal, cast

import asyncssh

from backend.errors import (
    ConfigError,
    FerryError,
    PermissionDeniedError,
    RemoteNotFoundError,
    TransferError,
    UnsafeNameError,
)
from backend.limits import TreeBudget
from backend.names import display_name, encode_name, has_raw_bytes, is_escaped, validate_name

EntryKind = Literal["file", "dir", "link", "other"]

_SPEC_RE = re.compile(r"^(?P<site>[A-Za-z0-9][A-Za-z0-9._-]{0,63}):(?P<path>.*)$")


@dataclass(frozen=True, slots=True)  # slots: a folder of 200,000 entries stays small
class RemoteEntry:
    name: str
    kind: EntryKind
    size: int
    mtime: float | None
    mode: int  # permission bits only (0o7777)
    link_target: str | None = None

    @property
    def utf8(self) -> bool:
        """False when the name is not valid UTF-8: a server's (spelled ``\\xHH``) or a local
        one (surrogate-escaped, as ``os.scandir`` gives it)."""
        return not (is_escaped(self.name) or has_raw_bytes(self.name))

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["mode"] = f"{self.mode:04o}"
        data["raw_name_hex"] = encode_name(self.name).hex()  # the server's exact bytes
        data["name_is_utf8"] = self.utf8
        return data


@dataclass
class Listing:
    path: str
    entries: list[RemoteEntry]
    rejected: list[str] = field(default_factory=list)  # display-safe reasons


def parse_remote_spec(spec: str) -> tuple[str, str] | None:
    """``SITE:PATH`` -> (site, path); None when ``spec`` is not of that form (a local path)."""
    if spec.startswith(("/", "./", "../")):
        return None
    match = _SPEC_RE.match(spec)
    if match is None:
        return None
    return match.group("site"), match.group("path")


def resolve(base: str, path: str) -> str:
    """A remote path as the server should see it: relative paths are under ``base``."""
    if not path:
        return base or "."
    if path.startswith("/"):
        return posixpath.normpath(path)
    return posixpath.normpath(posixpath.join(base or ".", path))


def translate_sftp_error(exc: BaseException, path: str) -> FerryError:
    shown = display_name(path)
    if isinstance(exc, FerryError):
        return exc
    if isinstance(exc, asyncssh.SFTPNoSuchFile | FileNotFoundError):
        return RemoteNotFoundError(f"no such file or folder: {shown}")
    if isinstance(exc, asyncssh.SFTPPermissionDenied | PermissionError):
        return PermissionDeniedError(f"permission denied: {shown}")
    if isinstance(exc, asyncssh.SFTPError):
        return TransferError(f"{shown}: {display_name(str(exc.reason))}")
    if isinstance(exc, asyncssh.Error):
        return TransferError(f"{shown}: connection failed: {display_name(str(exc.reason))}")
    if isinstance(exc, OSError):
        return TransferError(f"{shown}: {exc.strerror or exc}")
    return TransferError(f"{shown}: {display_name(str(exc))}")


async def read_bytes(fh: asyncssh.SFTPClientFile, size: int = -1,
                     offset: int | None = None) -> bytes:
    """``fh.read(size, offset)`` on a file opened in binary mode ("rb", no encoding): bytes.

    asyncssh annotates ``SFTPClientFile.read`` as returning an unbound ``AnyStr`` (its class is
    not generic over the encoding), which type checkers read as ``str``; this says what a
    binary open returns."""
    return cast(bytes, await fh.read(size, offset))


@contextlib.contextmanager
def sftp_errors(path: str) -> Iterator[None]:
    """Turn SFTP/OS errors raised inside the block into typed Ferry errors about ``path``."""
    try:
        yield
    except FerryError:
        raise
    except (asyncssh.Error, OSError) as exc:
        raise translate_sftp_error(exc, path) from None


def entry_kind(mode: int | None) -> EntryKind:
    """The entry type of a ``st_mode`` / SFTP permissions value."""
    if mode is None:
        return "other"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


_MODES: dict[int, int] = {}  # one int object per permission value (a big folder shares a few)


def entry_from_attrs(name: str, attrs: asyncssh.SFTPAttrs) -> RemoteEntry:
    mode = attrs.permissions
    bits = (mode or 0) & 0o7777
    return RemoteEntry(
        name=name,
        kind=entry_kind(mode),
        size=int(attrs.size or 0),
        mtime=float(attrs.mtime) if attrs.mtime is not None else None,
        mode=_MODES.setdefault(bits, bits),
    )


async def list_dir(sftp: asyncssh.SFTPClient, path: str, *, links: bool = True,
                   budget: TreeBudget | None = None, label: str | None = None) -> Listing:
    """List one remote folder. Unsafe names are skipped and reported, never returned.

    With ``budget``, a listing longer than the entries it has left raises
    :class:`~backend.errors.LimitExceededError` as soon as the server has sent that many
    (a listing that never ends cannot fill memory); the error names ``label`` (default
    ``path``).
    """
    limit = budget.entries_left if budget is not None else None
    # Each name becomes a small RemoteEntry as it arrives: keeping the server's SFTPName
    # objects (attributes and all) until the end took ~1 KB per entry, 200 MB for a folder of
    # 200,000 (bench/bench_tui.py). Links are read after the scan, as before.
    entries: list[RemoteEntry] = []
    rejected: list[str] = []
    seen = 0
    with sftp_errors(path):
        # asyncssh annotates scandir() as an AsyncIterator; it is an async generator (aclose)
        scan_gen = cast("AsyncGenerator[asyncssh.SFTPName, None]", sftp.scandir(path))
        async with contextlib.aclosing(scan_gen) as scan:
            async for item in scan:
                if item.filename in (".", ".."):
                    continue
                seen += 1
                if limit is not None and seen > limit:
                    assert budget is not None
                    budget.over_entries(label or display_name(path))
                try:
                    name = validate_name(item.filename)
                except UnsafeNameError as exc:
                    rejected.append(exc.message)
                    continue
                entries.append(entry_from_attrs(name, item.attrs))
    if links:
        for index, entry in enumerate(entries):
            if entry.kind == "link":
                with contextlib.suppress(asyncssh.Error):
                    target = await sftp.readlink(posixpath.join(path, entry.name))
                    entries[index] = RemoteEntry(
                        **{**asdict(entry), "link_target": display_name(target)})
    # Folders first, then by name: two stable sorts, so that no (bool, str) key is held per
    # entry at once (a folder of 200,000 entries).
    entries.sort(key=lambda e: e.name.lower())
    entries.sort(key=lambda e: e.kind != "dir")
    return Listing(path=path, entries=entries, rejected=rejected)


@dataclass(frozen=True)
class WalkItem:
    """One entry found by :func:`walk`; ``parts`` are validated names relative to the top."""

    parts: tuple[str, ...]
    entry: RemoteEntry

    @property
    def relpath(self) -> str:
        return "/".join(self.parts)


async def walk(
    sftp: asyncssh.SFTPClient,
    top: str,
    *,
    rejected: list[str] | None = None,
    budget: TreeBudget | None = None,
    label: str | None = None,
) -> AsyncIterator[WalkItem]:
    """Yield every entry under ``top`` (folders before their contents), depth-first.

    Symlinks are yielded as ``link`` entries and never followed. Unsafe names are appended to
    ``rejected`` and skipped with everything below them. Every entry (and every file's size)
    is counted against ``budget`` (default: the default caps, backend/limits.py); the first
    cap passed raises :class:`~backend.errors.LimitExceededError` (naming ``label``, default
    ``top``).
    """
    if budget is None:
        budget = TreeBudget(flags=False)
    where = label or display_name(top)
    stack: list[tuple[str, tuple[str, ...]]] = [(top, ())]
    while stack:
        path, parts = stack.pop()
        listing = await list_dir(sftp, path, links=False, budget=budget, label=where)
        budget.entries += len(listing.rejected)  # names the server listed count, refused or not
        if rejected is not None:
            rejected.extend(f"{display_name(path)}: {r}" for r in listing.rejected)
        subdirs = []
        for entry in listing.entries:
            item = WalkItem(parts=(*parts, entry.name), entry=entry)
            budget.take(where, len(item.parts), entry.size if entry.kind == "file" else 0)
            yield item
            if entry.kind == "dir":
                subdirs.append((posixpath.join(path, entry.name), item.parts))
        stack.extend(reversed(subdirs))


async def stat_path(sftp: asyncssh.SFTPClient, path: str) -> RemoteEntry:
    """lstat one path (a symlink is reported as a link, not followed)."""
    with sftp_errors(path):
        attrs = await sftp.lstat(path)
    name = posixpath.basename(path.rstrip("/")) or "/"
    return entry_from_attrs(name, attrs)


async def mkdir(sftp: asyncssh.SFTPClient, parent: str, name: str) -> str:
    """Create the folder ``name`` in ``parent``; an existing name is refused (ConfigError)."""
    path = posixpath.join(parent, validate_name(name))
    try:
        await sftp.mkdir(path)
    except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists) as exc:
        if await exists(sftp, path):
            raise ConfigError(f"{display_name(path)} already exists; choose another name") \
                from None
        raise translate_sftp_error(exc, path) from None
    except (asyncssh.Error, OSError) as exc:
        raise translate_sftp_error(exc, path) from None
    return path


async def exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return False
    except asyncssh.Error as exc:
        raise translate_sftp_error(exc, path) from None
    return True


async def makedirs(sftp: asyncssh.SFTPClient, path: str) -> list[str]:
    """``mkdir -p``: create ``path`` and its missing parents; returns the folders created.
    An existing folder is fine; an existing file on the way is refused (ConfigError)."""
    created: list[str] = []
    current = "/" if path.startswith("/") else ""
    for part in [p for p in path.split("/") if p and p != "."]:
        current = posixpath.join(current, validate_name(part)) if current else validate_name(part)
        try:
            attrs = await sftp.stat(current)
        except asyncssh.SFTPNoSuchFile:
            with sftp_errors(current):
                await sftp.mkdir(current)
            created.append(current)
            continue
        except asyncssh.Error as exc:
            raise translate_sftp_error(exc, current) from None
        if not stat.S_ISDIR(attrs.permissions or 0):
            raise ConfigError(f"{display_name(current)} exists and is not a folder")
    return created


async def move_by_rename(sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
    """Move ``src`` to ``dst`` on one server with a server-side rename (never replacing:
    an existing ``dst`` is refused with ConfigError). A server that refuses renames raises
    PermissionDeniedError / TransferError: the caller may move by copy and delete instead."""
    if await exists(sftp, dst):
        raise ConfigError(f"{display_name(dst)} already exists; nothing was moved")
    with sftp_errors(src):
        await sftp.rename(src, dst)


async def rename(sftp: asyncssh.SFTPClient, parent: str, old: str, new: str) -> str:
    """Rename within one folder; refuses to replace an existing entry."""
    src = posixpath.join(parent, validate_name(old))
    dst = posixpath.join(parent, validate_name(new))
    with sftp_errors(dst):
        if await sftp.exists(dst):
            raise ConfigError(f"{display_name(dst)} already exists; choose another name")
    with sftp_errors(src):
        await sftp.rename(src, dst)
    return dst


async def plan_delete(sftp: asyncssh.SFTPClient, path: str) -> list[WalkItem]:
    """Everything a delete of ``path`` would remove (for the confirmation list)."""
    top = await stat_path(sftp, path)
    items = [WalkItem(parts=(top.name,), entry=top)]
    if top.kind == "dir":
        async for item in walk(sftp, path):
            items.append(WalkItem(parts=(top.name, *item.parts), entry=item.entry))
    return items


async def delete(sftp: asyncssh.SFTPClient, path: str) -> int:
    """Delete a file, a symlink (not its target) or a folder tree. Returns entries removed."""
    top = await stat_path(sftp, path)
    if top.kind != "dir":
        with sftp_errors(path):
            await sftp.remove(path)
        return 1
    items = [item async for item in walk(sftp, path)]
    count = 0
    for item in sorted(items, key=lambda i: len(i.parts), reverse=True):
        target = posixpath.join(path, *item.parts)
        with sftp_errors(target):
            if item.entry.kind == "dir":
                await sftp.rmdir(target)
            else:
                await sftp.remove(target)
        count += 1
    with sftp_errors(path):
        await sftp.rmdir(path)
    return count + 1


VIEW_LIMIT = 256 * 1024


async def read_head(
    sftp: asyncssh.SFTPClient, path: str, limit: int = VIEW_LIMIT
) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of a remote file and whether it was truncated."""
    with sftp_errors(path):
        async with sftp.open(path, "rb") as fh:
            data = await read_bytes(fh, limit + 1)
    return data[:limit], len(data) > limit
