"""Moves: transfer jobs whose originals are deleted once their copies are verified, anywhere.

A move is an ordinary journaled job tagged :data:`TAG` (``move:direct``; the finisher
mechanism is backend/transfers/finishers.py). Whichever process ends the job — the ``ferry``
command that queued it, the TUI, or ``ferry queue resume`` after a crash — runs :func:`finish`,
which settles each file on its own (docs/transfers.md, "Moves"):

* the original of a file that is ``done`` and whose copy was checked (any verification but
  ``none``) is deleted, after checking it is still the file that was copied (same size and
  modification time; a file changed since is kept);
* the original of a file that was skipped (its destination existed), failed, was cancelled or
  was copied without a check is kept, and the outcome says which and why;
* folders the move was given are removed afterwards only where they are empty (deepest
  first); a folder still holding what was not moved stays;
* a cancelled move keeps every original.

Site-to-site moves (backend/relay.py) end the same way: their upload leg's finisher calls
:func:`settle` with the originals on the source site. The outcome is written to the audit log
(``transfer.move``), returned as the job's note, and kept for the process that ended the job
(:func:`outcome_of`). Idempotent: an original already gone counts as moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import stat
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import asyncssh

from backend.errors import FerryError
from backend.names import display_name
from backend.remote import resolve, walk
from backend.transfers import finishers
from backend.transfers.journal import FileRow
from backend.transfers.model import JobSpec, verified_label

log = logging.getLogger("ferry.transfers")

KIND = "move"
TAG = f"{KIND}:direct"
NOT_EMPTY = "not empty: it holds what was not moved"
SHOWN = 5  # kept originals named in the one-line note (all of them are in the audit log)


@dataclass(frozen=True)
class Kept:
    path: str
    reason: str


@dataclass
class MoveOutcome:
    """What a finished move did with its originals."""

    job_id: int
    state: str  # the job's end state
    deleted: list[str] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    folders_removed: list[str] = field(default_factory=list)
    folders_kept: list[Kept] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every original is gone (and every folder given)."""
        return self.state == "done" and not self.kept and not self.folders_kept

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"complete": self.complete}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MoveOutcome:
        """The outcome :meth:`to_json` gave (what the agent reports to its clients)."""
        return cls(job_id=data["job_id"], state=data["state"], deleted=data["deleted"],
                   kept=[Kept(**k) for k in data["kept"]],
                   folders_removed=data["folders_removed"],
                   folders_kept=[Kept(**k) for k in data["folders_kept"]])

    def note(self) -> str:
        moved = f"move: {len(self.deleted)} original(s) deleted after a verified copy"
        if not self.kept and not self.folders_kept:
            return moved
        kept = [*self.kept, *self.folders_kept]
        shown = "; ".join(f"{display_name(k.path)} ({k.reason})" for k in kept[:SHOWN])
        more = f"; and {len(kept) - SHOWN} more (see 'ferry audit')" if len(kept) > SHOWN else ""
        return f"{moved}; {len(kept)} kept: {shown}{more}"


_outcomes: weakref.WeakKeyDictionary[Any, dict[int, MoveOutcome]] = weakref.WeakKeyDictionary()


def outcome_of(engine: Any, job_id: int) -> MoveOutcome | None:
    """The outcome of a move this engine ended (None if another process ended it)."""
    return _outcomes.get(engine, {}).get(job_id)


def is_move(spec: JobSpec | None) -> bool:
    return bool(spec is not None and spec.tag and finishers.kind_of(spec.tag) == KIND)


def verified(method: str | None) -> bool:
    return bool(method) and method != "none"


def why_kept(row: FileRow, job_state: str) -> str | None:
    """Why the original of ``row`` must stay; None when its copy is done and verified."""
    if job_state == "cancelled":
        return "the move was cancelled"
    if row.state == "done":
        if not verified(row.verify):
            return f"copied but {verified_label(row.verify)}"
        return None
    if row.state == "skipped":
        return f"not copied: {display_name(row.error or 'skipped')}"
    if row.state == "failed":
        return f"the copy failed: {display_name(row.error or 'failed')}"
    return f"not copied ({row.state})"


@dataclass(frozen=True)
class Original:
    """A source file due for deletion, as it was when the job planned it."""

    path: str
    size: int
    mtime: float | None


class Side(Protocol):
    """Where the originals are: this machine or a site (through one SFTP session)."""

    async def remove_if_unchanged(self, original: Original) -> str | None: ...

    async def remove_empty_folders(self, root: str) -> bool | str:
        """True: removed; False: not a folder (nothing to do); else why it stays."""
        ...


class LocalSide:
    async def remove_if_unchanged(self, original: Original) -> str | None:
        return await asyncio.to_thread(self._remove, original)

    @staticmethod
    def _remove(original: Original) -> str | None:
        try:
            st = os.lstat(original.path)
        except FileNotFoundError:
            return None  # already gone (an earlier run of this finisher)
        except OSError as exc:
            return f"cannot check it: {exc.strerror or exc}"
        if not stat.S_ISREG(st.st_mode) or st.st_size != original.size or (
                original.mtime is not None and abs(st.st_mtime - original.mtime) > 1e-3):
            return "changed since it was copied"
        try:
            os.unlink(original.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"copied, but it could not be deleted: {exc.strerror or exc}"
        return None

    async def remove_empty_folders(self, root: str) -> bool | str:
        return await asyncio.to_thread(self._rmdirs, root)

    @staticmethod
    def _rmdirs(root: str) -> bool | str:
        if os.path.islink(root) or not os.path.isdir(root):
            return False
        for dirpath, _dirs, _files in os.walk(root, topdown=False):  # never follows links
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        return NOT_EMPTY if os.path.lexists(root) else True


class RemoteSide:
    def __init__(self, sftp: asyncssh.SFTPClient) -> None:
        self.sftp = sftp

    async def remove_if_unchanged(self, original: Original) -> str | None:
        try:
            attrs = await self.sftp.lstat(original.path)
        except asyncssh.SFTPNoSuchFile:
            return None
        except asyncssh.Error as exc:
            return f"cannot check it: {display_name(str(exc.reason or exc))}"
        size, mtime = attrs.size, attrs.mtime
        resized = size is not None and size != original.size
        touched = original.mtime is not None and mtime is not None \
            and abs(float(mtime) - original.mtime) > 1
        if not stat.S_ISREG(attrs.permissions or 0) or resized or touched:
            return "changed since it was copied"
        try:
            await self.sftp.remove(original.path)
        except asyncssh.SFTPNoSuchFile:
            return None
        except asyncssh.Error as exc:
            return f"copied, but it could not be deleted: {display_name(str(exc.reason or exc))}"
        return None

    async def remove_empty_folders(self, root: str) -> bool | str:
        try:
            attrs = await self.sftp.lstat(root)
        except asyncssh.Error:
            return False
        if not stat.S_ISDIR(attrs.permissions or 0):
            return False
        folders = [root]
        try:
            async for item in walk(self.sftp, root):
                if item.entry.kind == "dir":
                    folders.append(posixpath.join(root, *item.parts))
        except FerryError as exc:
            return f"not removed: {exc.message}"
        for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
            with contextlib.suppress(asyncssh.Error):
                await self.sftp.rmdir(folder)
        try:
            await self.sftp.lstat(root)
        except asyncssh.SFTPNoSuchFile:
            return True
        except asyncssh.Error:
            pass
        return NOT_EMPTY


async def settle(side: Side, outcome: MoveOutcome,
                 candidates: Iterable[tuple[Original, str | None]],
                 folders: Iterable[str]) -> MoveOutcome:
    """Delete each original whose reason to keep is None (if unchanged), then remove the
    empty folders under each of ``folders`` (a move's folder sources), deepest first."""
    for original, reason in candidates:
        if reason is None:
            reason = await side.remove_if_unchanged(original)
        if reason is None:
            outcome.deleted.append(original.path)
        else:
            outcome.kept.append(Kept(original.path, reason))
    if outcome.state != "cancelled":
        for folder in folders:
            removed = await side.remove_empty_folders(folder)
            if removed is True:
                outcome.folders_removed.append(folder)
            elif removed:
                outcome.folders_kept.append(Kept(folder, removed))
    return outcome


def record(engine: Any, spec: JobSpec, outcome: MoveOutcome, *, source_site: str | None) -> str:
    """Keep the outcome for this process, audit it, and return the job's note."""
    _outcomes.setdefault(engine, {})[outcome.job_id] = outcome
    engine.audit.append(
        "transfer.move", job=outcome.job_id, site=spec.site, source_site=source_site,
        state=outcome.state, deleted=len(outcome.deleted), complete=outcome.complete,
        kept=[asdict(k) for k in [*outcome.kept, *outcome.folders_kept]],
    )
    if outcome.kept or outcome.folders_kept:
        log.warning("job %s: %s", outcome.job_id, outcome.note())
    return outcome.note()


def _original(row: FileRow) -> Original:
    return Original(row.src, row.size, row.mtime)


async def finish(ended: finishers.Finished) -> str | None:
    """A ``move:direct`` job ended: delete its verified originals (see the module docstring)."""
    engine, spec = ended.engine, ended.spec
    rows = engine.journal.files(ended.job_id)
    outcome = MoveOutcome(ended.job_id, ended.state)
    candidates: list[tuple[Original, str | None]] = []
    for r in rows:
        if r.dst:
            candidates.append((_original(r), why_kept(r, ended.state)))
        else:  # failed while planning (missing, unsafe name...): its source is only a label
            outcome.kept.append(Kept(r.src, why_kept(r, ended.state) or "not copied"))
    if spec.direction == "put":
        roots = [os.path.abspath(os.path.expanduser(s)) for s in spec.sources] \
            if spec.recursive else []
        await settle(LocalSide(), outcome, candidates, roots)
        return record(engine, spec, outcome, source_site=None)
    wanted = [c for c in candidates if c[1] is None]
    if not wanted and (not spec.recursive or ended.state == "cancelled"):  # no need to connect
        for original, reason in candidates:
            outcome.kept.append(Kept(original.path, reason or "kept"))
        return record(engine, spec, outcome, source_site=spec.site)
    try:
        async with engine.borrow_sftp(spec.site) as sftp:
            site = engine.site(spec.site)
            base = site.remote_dir if site is not None else ""
            roots = [resolve(base, s) for s in spec.sources] if spec.recursive else []
            await settle(RemoteSide(sftp), outcome, candidates, roots)
    except FerryError as exc:
        done = set(outcome.deleted) | {k.path for k in outcome.kept}
        outcome.kept.extend(Kept(o.path, f"could not connect to delete it: {exc.message}")
                            for o, _ in candidates if o.path not in done)
    return record(engine, spec, outcome, source_site=spec.site)


finishers.register(KIND, finish)
