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
import os
import posixpath
import stat
from pathlib import Path

import asyncssh

from backend.errors import FerryError, UnsafeNameError
from backend.fsutil import safe_join
from backend.names import display_name, validate_name
from backend.remote import resolve, sftp_errors, stat_path, walk
from backend.sites.model import Site
from backend.transfers.journal import NewFile
from backend.transfers.model import JobSpec


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
    dest = Path(os.path.abspath(os.path.expanduser(spec.destination)))
    inside = dest.is_dir() or spec.destination.endswith("/") or len(spec.sources) > 1
    if inside:
        dest.mkdir(parents=True, exist_ok=True)
    elif not dest.parent.is_dir():
        return [_failed(spec.destination, f"local folder {dest.parent} does not exist")]
    out: list[NewFile] = []
    for source in spec.sources:
        path = resolve(site.remote_dir, source)
        try:
            top = await stat_path(sftp, path)
            name = validate_name(posixpath.basename(path.rstrip("/")) or "")
        except FerryError as exc:
            out.append(_failed(path, exc.message))
            continue
        if top.kind == "link":
            # a link the user named explicitly: follow it once for the top level only
            try:
                with sftp_errors(path):
                    attrs = await sftp.stat(path)
            except FerryError as exc:
                out.append(_failed(path, exc.message))
                continue
            from backend.remote import entry_from_attrs

            top = entry_from_attrs(name, attrs)
        root = dest if inside else dest.parent
        target_name = name if inside else dest.name
        if top.kind == "file":
            out.append(NewFile(path, str(safe_join(root, target_name)), top.size, top.mtime,
                               top.mode))
            continue
        if top.kind != "dir":
            out.append(_skipped(path, "", "not a regular file or folder"))
            continue
        if not spec.recursive:
            out.append(_failed(path, f"{display_name(path)} is a folder: use -r"))
            continue
        try:
            base = safe_join(root, target_name)
            _mkdir_local(base)
            rejected: list[str] = []
            async for item in walk(sftp, path, rejected=rejected):
                remote = posixpath.join(path, *item.parts)
                local = safe_join(base, *item.parts)
                if item.entry.kind == "dir":
                    _mkdir_local(local)
                elif item.entry.kind == "file":
                    out.append(NewFile(remote, str(local), item.entry.size, item.entry.mtime,
                                       item.entry.mode))
                elif item.entry.kind == "link":
                    out.append(_skipped(remote, str(local), "server symlink not followed"))
                else:
                    out.append(_skipped(remote, str(local), "not a regular file"))
            out.extend(_failed(path, reason) for reason in rejected)
        except FerryError as exc:
            out.append(_failed(path, exc.message))
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


_Tree = tuple[
    list[tuple[str, ...]], list[tuple[tuple[str, ...], os.stat_result]], list[tuple[str, str]]
]


def _local_tree(top: Path) -> _Tree:
    """Folders, files and skipped entries under ``top`` (symlinks never followed)."""
    dirs: list[tuple[str, ...]] = []
    files: list[tuple[tuple[str, ...], os.stat_result]] = []
    skipped: list[tuple[str, str]] = []
    stack: list[tuple[Path, tuple[str, ...]]] = [(top, ())]
    while stack:
        path, parts = stack.pop()
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            sub = (*parts, entry.name)
            try:
                validate_name(entry.name)
            except UnsafeNameError as exc:
                skipped.append((entry.path, exc.message))
                continue
            if entry.is_symlink():
                skipped.append((entry.path, "local symlink not followed"))
            elif entry.is_dir(follow_symlinks=False):
                dirs.append(sub)
                stack.append((Path(entry.path), sub))
            elif entry.is_file(follow_symlinks=False):
                files.append((sub, entry.stat(follow_symlinks=False)))
            else:
                skipped.append((entry.path, "not a regular file"))
    return dirs, files, skipped


async def plan_put(sftp: asyncssh.SFTPClient, site: Site, spec: JobSpec) -> list[NewFile]:
    dest = resolve(site.remote_dir, spec.destination)
    inside = (
        spec.destination.endswith("/") or len(spec.sources) > 1 or await _remote_is_dir(sftp, dest)
    )
    out: list[NewFile] = []
    if inside and not await _remote_is_dir(sftp, dest):
        try:
            await _makedirs_remote(sftp, dest)
        except FerryError as exc:
            return [_failed(spec.destination, exc.message)]
    for source in spec.sources:
        local = Path(os.path.abspath(os.path.expanduser(source)))
        try:
            st = local.stat()
            name = validate_name(local.name)
        except FileNotFoundError:
            out.append(_failed(source, f"{source} does not exist"))
            continue
        except (OSError, FerryError) as exc:
            out.append(_failed(source, getattr(exc, "message", None) or str(exc)))
            continue
        target = posixpath.join(dest, name) if inside else dest
        if stat.S_ISREG(st.st_mode):
            out.append(NewFile(str(local), target, st.st_size, st.st_mtime, st.st_mode & 0o7777))
            continue
        if not stat.S_ISDIR(st.st_mode):
            out.append(_skipped(str(local), target, "not a regular file or folder"))
            continue
        if not spec.recursive:
            out.append(_failed(source, f"{source} is a folder: use -r"))
            continue
        try:
            dirs, files, skipped = await asyncio.to_thread(_local_tree, local)
            await _mkdir_remote(sftp, target)
            by_depth: dict[int, list[tuple[str, ...]]] = {}
            for parts in dirs:
                by_depth.setdefault(len(parts), []).append(parts)
            for depth in sorted(by_depth):
                await asyncio.gather(
                    *(_mkdir_remote(sftp, posixpath.join(target, *p)) for p in by_depth[depth])
                )
            for parts, fst in files:
                out.append(NewFile(str(local.joinpath(*parts)), posixpath.join(target, *parts),
                                   fst.st_size, fst.st_mtime, fst.st_mode & 0o7777))
            out.extend(_skipped(p, "", why) for p, why in skipped)
        except FerryError as exc:
            out.append(_failed(source, exc.message))
        except OSError as exc:
            out.append(_failed(source, f"{source}: {exc.strerror or exc}"))
    return out
