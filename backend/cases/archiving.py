"""Archiving finished cases: inbox ``<case>`` -> ``<archive>/<year>/<case>`` by SFTP rename.

Only for ``inbox-outbox`` sites. :func:`plan_archive` is the preview: the exact moves (case,
source, destination, year from the case folder's mtime, local time) plus what is refused (the
destination already exists) or unknown. :func:`archive` carries out exactly a plan's moves, one
rename each, creating ``<archive>/<year>`` as needed. Nothing is ever deleted or overwritten:
an existing destination is re-checked right before each rename and refused. Each move is
audited (``case.archived``) and recorded in the case store.
"""

from __future__ import annotations

import posixpath
import re
import time
from dataclasses import dataclass, field

import asyncssh

from backend import remote
from backend.audit import AuditLog
from backend.cases import presets
from backend.cases.folders import case_folders, ensure_dirs
from backend.cases.store import ARCHIVED, CaseStore, now
from backend.errors import ConfigError, FerryError, UsageError
from backend.names import display_name
from backend.sites.model import Site

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` (a bare number means days) -> seconds."""
    match = _DURATION.match(text or "")
    if not match:
        raise UsageError(f"invalid duration {text!r}: use e.g. 30d, 12h, 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class ArchiveMove:
    case_id: str
    source: str
    destination: str
    year: int
    mtime: float


@dataclass
class ArchivePlan:
    site: str
    moves: list[ArchiveMove] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # display-safe reasons


@dataclass
class ArchiveResult:
    plan: ArchivePlan
    moved: list[ArchiveMove] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[FerryError] = field(default_factory=list)  # one per failed move, in order


async def plan_archive(
    site: Site,
    sftp: asyncssh.SFTPClient,
    cases: list[str] | None = None,
    *,
    older_than: float | None = None,
    at: float | None = None,
) -> ArchivePlan:
    """What :func:`archive` would move: the named ``cases`` and/or those older than N seconds."""
    folders = await case_folders(site, sftp)
    if folders.layout != presets.INBOX_OUTBOX:
        raise UsageError(f"site {site.name}: archiving needs the inbox-outbox layout")
    if not cases and older_than is None:
        raise UsageError("name the cases to archive or give --older-than DURATION")
    plan = ArchivePlan(site=site.name)
    listing = await remote.list_dir(sftp, folders.inbox, links=False)
    plan.refused.extend(f"{folders.inbox}: skipped {r}" for r in listing.rejected)
    by_name = {e.name: e for e in listing.entries}
    wanted: list[remote.RemoteEntry] = []
    for name in cases or []:
        entry = by_name.get(name)
        if entry is None or entry.kind != "dir":
            raise ConfigError(
                f"no case {display_name(name)!r} in {folders.inbox} on {site.name}",
                hint=f"ferry case list {site.name}",
            )
        wanted.append(entry)
    if older_than is not None:
        cutoff = (at if at is not None else time.time()) - older_than
        named = {e.name for e in wanted}
        wanted.extend(
            e for e in listing.entries
            if e.kind == "dir" and e.name not in named and (e.mtime or 0) < cutoff
        )
    for entry in sorted(wanted, key=lambda e: e.name):
        mtime = entry.mtime or 0.0
        year = time.localtime(mtime).tm_year
        dest = posixpath.join(folders.archive, str(year), entry.name)
        src = posixpath.join(folders.inbox, entry.name)
        if await _exists(sftp, dest):
            plan.refused.append(f"{entry.name}: {dest} already exists; not overwriting it")
            continue
        plan.moves.append(ArchiveMove(entry.name, src, dest, year, mtime))
    return plan


async def _exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        await remote.stat_path(sftp, path)
    except FerryError:
        return False
    return True


async def archive(
    site: Site,
    sftp: asyncssh.SFTPClient,
    cases: list[str] | None = None,
    *,
    older_than: float | None = None,
    dry_run: bool = False,
    plan: ArchivePlan | None = None,
    store: CaseStore | None = None,
    audit: AuditLog | None = None,
) -> ArchiveResult:
    """Move the planned cases (or just return the plan with ``dry_run``)."""
    plan = plan or await plan_archive(site, sftp, cases, older_than=older_than)
    result = ArchiveResult(plan=plan)
    if dry_run or not plan.moves:
        return result
    folders = await case_folders(site, sftp)
    store = store or CaseStore()
    audit = audit or AuditLog()
    for move in plan.moves:
        try:
            await ensure_dirs(sftp, posixpath.dirname(move.destination), folders.root)
            if await _exists(sftp, move.destination):
                raise ConfigError(f"{move.destination} already exists; not overwriting it")
            with remote.sftp_errors(move.source):
                await sftp.rename(move.source, move.destination)
            moved = await remote.stat_path(sftp, move.destination)
            if moved.kind != "dir" or await _exists(sftp, move.source):
                raise ConfigError(f"{move.case_id}: the server did not complete the rename")
        except FerryError as exc:
            result.failed.append(f"{move.case_id}: {exc.message}")
            result.errors.append(exc)
            continue
        result.moved.append(move)
        store.upsert(
            site.name, move.case_id, state=ARCHIVED, layout=folders.layout,
            archived_at=now(), archive_path=move.destination,
        )
        audit.append(
            "case.archived", site=site.name, case=move.case_id,
            source=move.source, destination=move.destination,
        )
    return result
