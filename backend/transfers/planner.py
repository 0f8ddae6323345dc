"""Expanding a job's sources into the list of files to move (once, stored in the journal).

Downloads walk the server with :func:`backend.remote.walk` (never asyncssh's ``recurse``):
hostile names are left out and reported as failed entries, server symlinks are reported and
never recreated, every local path is built with :func:`backend.fsutil.safe_join` under the
destination so nothing lands outside it, and folders are created 0700-umask-free as the user's
own. Uploads walk the local tree without following symlinks and create the remote folders.

Destination rules (like ``cp``): an existing folder, a path ending in ``/``, or several sources
mean "put them inside"; otherwise a single source is copied *to* that name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import stat
from pathlib import Path

import asyncssh

from backend.errors import FerryError, LimitExceededError, UnsafeNameError
from backend.fsutil import safe_join
from backend.limits import TreeBudget
from backend.names import display_name, has_raw_bytes, validate_name
from backend.remote import entry_from_attrs, resolve, sftp_errors, stat_path, walk
from backend.sites.model import Site
from backend.transfers.journal import NewFile
from backend.transfers.model import JobSpec

log = logging.getLogger("ferry.transfers")


def _failed(src: str, error: str) -> NewFile:
    return NewFile(src=display_name(src), dst="", state="failed", error=display_name(error))


def _skipped(src: str, dst: str, why: str) -> NewFile:
    return NewFile(src=src, dst=dst, state="skipped", error=why)


def _mkdir_local(path: Path) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not path.is_dir():
            raise UnsafeNameError(f"{path} exists and is not a folder") from None


async def plan_get(sftp: asyncssh.SFTPClient, site: Site, spec: JobSpec) -> list[NewFile]:
    """Walk every source first (against the job's caps), then create the local folders: a cap
    that is hit leaves nothing behind on this machine."""
    dest = Path(os.path.abspath(os.path.expanduser(spec.destination)))
    inside = dest.is_dir() or spec.destination.endswith("/") or len(spec.sources) > 1
    if not inside and not dest.parent.is_dir():
        return [_failed(spec.destination, f"local folder {dest.parent} does not exist")]
    budget = TreeBudget(spec.limits)
    planned: list[tuple[str, list[Path], list[NewFile]]] = []  # per source: folders, files
    for source in spec.sources:
        path = resolve(site.remote_dir, source)
        try:
            top = await stat_path(sftp, path)
            name = validate_name(posixpath.basename(path.rstrip("/")) or "")
        except FerryError as exc:
            planned.append((path, [], [_failed(path, exc.message)]))
            continue
        if top.kind == "link":
            # a link the user named explicitly: follow it once for the top level only
            try:
                with sftp_errors(path):
                    attrs = await sftp.stat(path)
            except FerryError as exc:
                planned.append((path, [], [_failed(path, exc.message)]))
                continue
            top = entry_from_attrs(name, attrs)
        root = dest if inside else dest.parent
        target_name = name if inside else dest.name
        where = f"{site.name}:{display_name(path)}"
        if top.kind == "file":
            budget.take(where, 0, top.size)
            planned.append((path, [], [NewFile(path, str(safe_join(root, target_name)),
                                               top.size, top.mtime, top.mode)]))
            continue
        if top.kind != "dir":
            planned.append((path, [], [_skipped(path, "", "not a regular file or folder")]))
            continue
        if not spec.recursive:
            planned.append((path, [], [_failed(path, f"{display_name(path)} is a folder: use -r")]))
            continue
        try:
            base = safe_join(root, target_name)
            folders = [base]
            files: list[NewFile] = []
            rejected: list[str] = []
            async for item in walk(sftp, path, rejected=rejected, budget=budget, label=where):
                remote = posixpath.join(path, *item.parts)
                local = safe_join(base, *item.parts)
                if item.entry.kind == "dir":
                    folders.append(local)
                elif item.entry.kind == "file":
                    files.append(NewFile(remote, str(local), item.entry.size, item.entry.mtime,
                                         item.entry.mode))
                elif item.entry.kind == "link":
                    files.append(_skipped(remote, str(local), "server symlink not followed"))
                else:
                    files.append(_skipped(remote, str(local), "not a regular file"))
            files.extend(_failed(path, reason) for reason in rejected)
            planned.append((path, folders, files))
        except LimitExceededError:
            raise
        except FerryError as exc:
            planned.append((path, [], [_failed(path, exc.message)]))
    if inside:
        dest.mkdir(parents=True, exist_ok=True)
    out: list[NewFile] = []
    for path, folders, files in planned:
        try:
            for folder in folders:  # parents before children: the walk yields them so
                _mkdir_local(folder)
        except FerryError as exc:
            out.append(_failed(path, exc.message))
            continue
        except OSError as exc:
            out.append(_failed(path, f"{display_name(str(exc.filename))}: {exc.strerror or exc}"))
            continue
        out.extend(files)
    return out


async def _remote_is_dir(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        return stat.S_ISDIR((await sftp.stat(path)).permissions or 0)
    except asyncssh.SFTPError:
        return False


async def _mkdir_remote(sftp: asyncssh.SFTPClient, path: str) -> None:
    with sftp_errors(path):
        try:
            await sftp.mkdir(path)
        except asyncssh.SFTPFailure:
            if not await _remote_is_dir(sftp, path):
                raise
        except asyncssh.SFTPFileAlreadyExists:
            if not await _remote_is_dir(sftp, path):
                raise


async def _makedirs_remote(sftp: asyncssh.SFTPClient, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        if not await _remote_is_dir(sftp, current):
            await _mkdir_remote(sftp, current)



async def restore_folders(sftp: asyncssh.SFTPClient, direction: str,
                          destinations: list[str]) -> None:
    """Re-create destination folders that vanished since the job was planned (a resumed or
    retried job: the planner made them once). Best effort: a folder that cannot be made is
    logged here and the file then fails with its own reason."""
    for folder in sorted({os.path.dirname(d) if direction == "get" else posixpath.dirname(d)
                          for d in destinations}):
        if not folder:
            continue
        try:
            if direction == "get":
                if not os.path.isdir(folder):
                    os.makedirs(folder, 0o755, exist_ok=True)
                    log.info("re-created the local folder %s", display_name(folder))
            elif not await _remote_is_dir(sftp, folder):
                await _makedirs_remote(sftp, folder)
                log.info("re-created the folder %s on the server", display_name(folder))
        except (OSError, FerryError) as exc:
            log.warning("cannot re-create the folder %s: %s", display_name(folder), exc)

_Tree = tuple[
    list[tuple[str, ...]], list[tuple[tuple[str, ...], os.stat_result]], list[tuple[str, str]]
]

_NOT_UTF8 = "local name is not valid UTF-8: rename it to upload it"


def _local_tree(top: Path, budget: TreeBudget, where: str) -> _Tree:
    """Folders, files and skipped entries under ``top`` (symlinks never followed), counted
    against ``budget``."""
    dirs: list[tuple[str, ...]] = []
    files: list[tuple[tuple[str, ...], os.stat_result]] = []
    skipped: list[tuple[str, str]] = []
    stack: list[tuple[Path, tuple[str, ...]]] = [(top, ())]
    while stack:
        path, parts = stack.pop()
        with os.scandir(path) as it:
            entries = []
            for entry in it:
                entries.append(entry)
                if len(entries) > budget.entries_left:
                    budget.over_entries(where)
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            sub = (*parts, entry.name)
            if has_raw_bytes(entry.name):
                budget.take(where, len(sub))
                skipped.append((display_name(entry.path), _NOT_UTF8))
                continue
            try:
                validate_name(entry.name)
            except UnsafeNameError as exc:
                budget.take(where, len(sub))
                skipped.append((entry.path, exc.message))
                continue
            if entry.is_symlink():
                budget.take(where, len(sub))
                skipped.append((entry.path, "local symlink not followed"))
            elif entry.is_dir(follow_symlinks=False):
                budget.take(where, len(sub))
                dirs.append(sub)
                stack.append((Path(entry.path), sub))
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                budget.take(where, len(sub), st.st_size)
                files.append((sub, st))
            else:
                budget.take(where, len(sub))
                skipped.append((entry.path, "not a regular file"))
    return dirs, files, skipped


async def plan_put(sftp: asyncssh.SFTPClient, site: Site, spec: JobSpec) -> list[NewFile]:
    """Walk every local source first (against the job's caps), then create the remote
    folders: a cap that is hit creates nothing on the server."""
    dest = resolve(site.remote_dir, spec.destination)
    inside = (
        spec.destination.endswith("/") or len(spec.sources) > 1 or await _remote_is_dir(sftp, dest)
    )
    budget = TreeBudget(spec.limits)
    planned: list[tuple[str, Path, str, _Tree | None, list[NewFile]]] = []
    for source in spec.sources:
        local = Path(os.path.abspath(os.path.expanduser(source)))
        if has_raw_bytes(str(local)):
            planned.append((source, local, "", None, [_failed(source, _NOT_UTF8)]))
            continue
        try:
            st = local.stat()
            name = validate_name(local.name)
        except FileNotFoundError:
            planned.append((source, local, "", None,
                            [_failed(source, f"{source} does not exist")]))
            continue
        except (OSError, FerryError) as exc:
            planned.append((source, local, "", None,
                            [_failed(source, getattr(exc, "message", None) or str(exc))]))
            continue
        target = posixpath.join(dest, name) if inside else dest
        if stat.S_ISREG(st.st_mode):
            budget.take(source, 0, st.st_size)
            planned.append((source, local, target, None, [
                NewFile(str(local), target, st.st_size, st.st_mtime, st.st_mode & 0o7777)]))
            continue
        if not stat.S_ISDIR(st.st_mode):
            planned.append((source, local, target, None,
                            [_skipped(str(local), target, "not a regular file or folder")]))
            continue
        if not spec.recursive:
            planned.append((source, local, target, None,
                            [_failed(source, f"{source} is a folder: use -r")]))
            continue
        try:
            tree = await asyncio.to_thread(_local_tree, local, budget, display_name(source))
        except OSError as exc:
            planned.append((source, local, target, None,
                            [_failed(source, f"{source}: {exc.strerror or exc}")]))
            continue
        planned.append((source, local, target, tree, []))
    out: list[NewFile] = []
    if inside and not await _remote_is_dir(sftp, dest):
        try:
            await _makedirs_remote(sftp, dest)
        except FerryError as exc:
            return [_failed(spec.destination, exc.message)]
    for source, local, target, folder_tree, files in planned:
        if folder_tree is None:
            out.extend(files)
            continue
        dirs, found, skipped = folder_tree
        try:
            await _mkdir_remote(sftp, target)
            by_depth: dict[int, list[tuple[str, ...]]] = {}
            for parts in dirs:
                by_depth.setdefault(len(parts), []).append(parts)
            for depth in sorted(by_depth):
                await asyncio.gather(
                    *(_mkdir_remote(sftp, posixpath.join(target, *p)) for p in by_depth[depth])
                )
        except FerryError as exc:
            out.append(_failed(source, exc.message))
            continue
        for parts, fst in found:
            out.append(NewFile(str(local.joinpath(*parts)), posixpath.join(target, *parts),
                               fst.st_size, fst.st_mtime, fst.st_mode & 0o7777))
        out.extend(_skipped(p, "", why) for p, why in skipped)
    return out
