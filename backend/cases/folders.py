"""Where a site's case folders are on the server, as absolute remote paths.

Names come from ``Site.layout_folders`` first, then detection in the site's root
(:func:`backend.cases.layout.resolve_folders`: ``From_*``, ``To_*``, ``Old_Cases``...), then the
preset defaults (:mod:`backend.cases.presets`). One listing of the site root per call.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import asyncssh

from backend import remote
from backend.cases import presets
from backend.cases.layout import relative, resolve_folders
from backend.errors import ConfigError, FerryError, UsageError
from backend.names import validate_name
from backend.sites.model import Site


@dataclass(frozen=True)
class CaseFolders:
    layout: str
    root: str
    inbox: str = ""
    outbox: str = ""
    archive: str = ""
    input: str = ""
    output: str = ""


def _safe_rel(site: Site, key: str, rel: str) -> str:
    parts = [p for p in rel.strip("/").split("/") if p]
    if not parts:
        raise ConfigError(f"site {site.name}: layout folder {key!r} is empty")
    for part in parts:
        try:
            validate_name(part)
        except FerryError:
            raise ConfigError(
                f"site {site.name}: layout folder {key}={rel!r} is not a plain relative path"
            ) from None
    return "/".join(parts)


def require_case_layout(site: Site) -> str:
    if site.layout not in (presets.INBOX_OUTBOX, presets.STUDY_IO):
        raise UsageError(
            f"site {site.name} has no case layout (layout = {site.layout})",
            hint=f"ferry sites edit {site.name} --layout study-io (or inbox-outbox)",
        )
    return site.layout


async def case_folders(site: Site, sftp: asyncssh.SFTPClient) -> CaseFolders:
    """The site's case folders; missing folders are still named (they may be created later)."""
    layout = require_case_layout(site)
    root = remote.resolve("", site.remote_dir or ".")
    configured = dict(site.layout_folders or {})
    root_names: set[str] = set()
    if any(k not in configured for k in presets.FOLDER_KEYS[layout]):
        try:
            listing = await remote.list_dir(sftp, root, links=False)
            root_names = {e.name for e in listing.entries if e.kind == "dir"}
        except FerryError:
            root_names = set()
    found = resolve_folders(layout, configured, root_names)
    defaults = presets.default_folders(layout)
    paths: dict[str, str] = {}
    for key in presets.FOLDER_KEYS[layout]:
        rel = _safe_rel(site, key, getattr(found, key) or defaults[key])
        paths[key] = posixpath.normpath(posixpath.join(root, rel))
    return CaseFolders(layout=layout, root=root, **paths)


async def ensure_dirs(sftp: asyncssh.SFTPClient, path: str, stop_at: str) -> None:
    """Create ``path`` and any missing parents below ``stop_at`` (which must exist)."""
    rel = relative(stop_at, path)
    if rel is None:
        raise ConfigError(f"{path} is not under {stop_at}")
    if rel == "":
        return
    current = posixpath.normpath(stop_at)
    for part in rel.split("/"):
        nxt = posixpath.join(current, validate_name(part))
        try:
            entry = await remote.stat_path(sftp, nxt)
        except FerryError:
            await remote.mkdir(sftp, current, part)
        else:
            if entry.kind != "dir":
                raise ConfigError(f"{nxt} exists but is not a folder")
        current = nxt
