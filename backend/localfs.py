"""The local file system in the same shape as :mod:`backend.remote`, for the browser's local pane.

Listings return :class:`backend.remote.RemoteEntry` objects (lstat: a symlink is a ``link``,
never followed), so both panes share one code path. Operations: ``mkdir``, ``rename`` (refuses
to replace), ``plan_delete`` (everything a delete would remove, for the confirmation list) and
``delete`` (symlinks are removed as links; their targets and anything outside the folder are
never touched). Errors are typed :mod:`backend.errors` errors. Blocking: call from a thread.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from backend.errors import ConfigError, PermissionDeniedError
from backend.names import display_name, validate_name
from backend.remote import (
    VIEW_LIMIT,
    Listing,
    RemoteEntry,
    WalkItem,
    entry_kind,
    sftp_errors,
)


def _entry(name: str, st: os.stat_result, link_target: str | None = None) -> RemoteEntry:
    return RemoteEntry(
        name=name,
        kind=entry_kind(st.st_mode),
        size=st.st_size,
        mtime=st.st_mtime,
        mode=stat.S_IMODE(st.st_mode),
        link_target=link_target,
    )


def list_dir(path: str) -> Listing:
    """List one local folder (lstat, sorted folders first then by name)."""
    entries: list[RemoteEntry] = []
    with sftp_errors(path), os.scandir(path) as it:
        for item in it:
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between readdir and stat
            target = None
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = display_name(os.readlink(item.path))
                except OSError:
                    target = None
            entries.append(_entry(item.name, st, target))
    entries.sort(key=lambda e: (e.kind != "dir", e.name.lower()))
    return Listing(path=path, entries=entries)


def stat_path(path: str) -> RemoteEntry:
    with sftp_errors(path):
        st = os.lstat(path)
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    name = os.path.basename(path.rstrip("/")) or "/"
    return _entry(name, st, display_name(target) if target else None)


def mkdir(parent: str, name: str) -> str:
    path = os.path.join(parent, validate_name(name))
    with sftp_errors(path):
        os.mkdir(path, 0o755)
    return path


def rename(parent: str, old: str, new: str) -> str:
    """Rename within one folder; refuses to replace an existing entry."""
    src = os.path.join(parent, validate_name(old))
    dst = os.path.join(parent, validate_name(new))
    if os.path.lexists(dst):
        raise ConfigError(f"{display_name(dst)} already exists; choose another name")
    with sftp_errors(src):
        os.rename(src, dst)
    return dst


def _walk(top: str, parts: tuple[str, ...], out: list[WalkItem]) -> None:
    listing = list_dir(top)
    for entry in listing.entries:
        item_parts = (*parts, entry.name)
        out.append(WalkItem(parts=item_parts, entry=entry))
        if entry.kind == "dir":
            _walk(os.path.join(top, entry.name), item_parts, out)


def plan_delete(path: str) -> list[WalkItem]:
    """Everything a delete of ``path`` would remove, top first (symlinks are not descended)."""
    top = stat_path(path)
    items = [WalkItem(parts=(top.name,), entry=top)]
    if top.kind == "dir":
        _walk(path, (top.name,), items)
    return items


def delete(path: str) -> int:
    """Delete a file, a symlink (never its target) or a folder tree. Returns entries removed."""
    top = stat_path(path)
    if top.kind != "dir":
        with sftp_errors(path):
            os.unlink(path)
        return 1
    count = len(plan_delete(path))
    errors: list[str] = []

    def onexc(func: object, failed: str, exc: BaseException) -> None:
        errors.append(f"{display_name(failed)}: {getattr(exc, 'strerror', None) or exc}")

    # rmtree uses the fd-based walker on Linux: it never follows symlinks inside the tree.
    shutil.rmtree(path, onerror=lambda f, p, ei: onexc(f, p, ei[1]))
    if errors:
        raise PermissionDeniedError(f"could not delete everything: {errors[0]}")
    return count


def read_head(path: str, limit: int = VIEW_LIMIT) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of a local file and whether it was truncated."""
    with sftp_errors(path), open(path, "rb") as fh:
        data = fh.read(limit + 1)
    return data[:limit], len(data) > limit


def home() -> str:
    return str(Path.home())
