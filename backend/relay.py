"""Site-to-site copies and moves through the transfer engine (the "relay"), as journaled jobs.

Ferry's engine moves bytes only between this machine and one site. A copy from site A to site
B (or from one folder of a site to another) is therefore two ordinary engine jobs, chained
through the journal so the relay survives Ferry quitting or being killed
(backend/transfers/finishers.py runs each leg's finisher in whichever process ends it):

1. the download leg, tagged ``relay:<what comes next>``, ``get``\\ s the sources from A into a
   private staging folder ``paths.state_dir() / "relay" / "<pid>-<random>"`` (0700, only
   relays write there);
2. when it ends ``done`` with no failed file, its finisher queues the upload leg, tagged
   ``relay-put:<download job>``: a ``put`` of what landed in staging into B's destination.
   A failed or cancelled download uploads nothing;
3. when the upload leg ends, its finisher — for a move — settles the originals on A exactly as
   a direct move does (backend/transfers/moves.py: each original deleted only when both its
   download and its upload are done and verified and it is unchanged since; the others kept
   and named), then removes the staging folder. Staging is removed in every outcome: a leg
   that failed or was cancelled, or an upload that ended. To copy again after a failure, run
   the copy again (retrying a leg alone cannot: its staging is gone).

Both legs keep every engine guarantee (temporary names, verification, resume, the audit log)
and show in the queue as normal jobs. :func:`relay_copy` / :func:`relay_move` queue the first
leg and wait for both, reporting :class:`RelayProgress` (phase ``download``/``upload`` with the
engine job id, then the outcome). Cancelling that wait cancels the running leg only with
``cancel_on_exit=True`` (the default); the TUI and ``ferry mv`` pass False, so quitting leaves
the relay queued and the next engine to run the queue completes it.

Staging folders that no unfinished relay job uses and whose owner process is gone are swept
at the start of the next relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import posixpath
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from backend import paths
from backend.errors import FerryError, UsageError
from backend.fsutil import ensure_private_dir, pid_alive, safe_join
from backend.names import display_name
from backend.remote import resolve
from backend.transfers import finishers, moves
from backend.transfers.journal import JobRow, Journal
from backend.transfers.model import ConflictPolicy, JobSpec, JobStatus, VerifyMode

log = logging.getLogger("ferry.relay")

Phase = Literal["download", "upload", "done", "failed", "cancelled"]
RelayState = Literal["done", "failed", "cancelled"]
PART_SUFFIX = ".ferrypart"
DOWN, UP = "relay", "relay-put"  # tag kinds of the two legs
NOTHING = "nothing to copy (only links or special files)"


@dataclass(frozen=True)
class RelaySpec:
    """Copy ``sources`` (paths on ``source_site``) into the folder ``destination`` on
    ``dest_site`` (created if missing; the items land inside it, keeping their names).
    ``inside=False``: one source copied *to* the name ``destination`` (``ferry mv a:x b:y``)."""

    source_site: str
    sources: list[str]
    dest_site: str
    destination: str
    recursive: bool = False
    on_conflict: ConflictPolicy = "resume"
    verify: VerifyMode = "auto"
    inside: bool = True

    def validate(self) -> RelaySpec:
        if not self.source_site or not self.dest_site:
            raise UsageError("a site-to-site copy needs a source site and a destination site")
        if not self.sources or any(not s for s in self.sources):
            raise UsageError("nothing to copy: give at least one source path")
        if not self.destination:
            raise UsageError("a site-to-site copy needs a destination folder")
        if not self.inside and len(self.sources) != 1:
            raise UsageError("a copy to a new name takes exactly one source")
        names = [posixpath.basename(s.rstrip("/")) for s in self.sources]
        if len(set(names)) != len(names):
            raise UsageError("two sources have the same name: copy them one at a time")
        if self.source_site == self.dest_site:
            dest = posixpath.normpath(self.destination)
            for source in self.sources:
                src = posixpath.normpath(source)
                if dest == src or dest.startswith(src.rstrip("/") + "/"):
                    raise UsageError(f"cannot copy {display_name(source)} into itself")
                if self.inside and posixpath.dirname(src) == dest:
                    raise UsageError(
                        f"{display_name(source)} is already in {display_name(self.destination)}:"
                        " choose another folder"
                    )
        # The engine checks the rest (policies, verify modes) when the legs are submitted.
        JobSpec("get", self.source_site, list(self.sources), "/", self.recursive,
                self.on_conflict, self.verify).validate()
        return self

    @property
    def label(self) -> str:
        first = self.sources[0].rstrip("/").rsplit("/", 1)[-1] or self.sources[0]
        more = f" +{len(self.sources) - 1}" if len(self.sources) > 1 else ""
        return display_name(f"{first}{more} {self.source_site} → {self.dest_site}")


@dataclass(frozen=True)
class RelayProgress:
    """One step of a relay: ``download``/``upload`` started as engine job ``job_id``;
    then ``done``, ``failed`` or ``cancelled``."""

    phase: Phase
    job_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class RelayResult:
    state: RelayState
    download_job: int | None = None
    upload_job: int | None = None
    files_done: int = 0
    files_failed: int = 0
    error: str | None = None
    sources_deleted: bool = False  # moves only: every original is gone
    move: moves.MoveOutcome | None = None  # moves only, when this process ended the upload

    @property
    def ok(self) -> bool:
        return self.state == "done" and self.files_failed == 0


ProgressCallback = Callable[[RelayProgress], Awaitable[None] | None]


# -- staging ------------------------------------------------------------------------------------


def relay_root() -> Path:
    """Where staging folders live (0700)."""
    return ensure_private_dir(paths.state_dir() / "relay")


def _remove_staging(staging: Path) -> None:
    """Remove one staging folder (never follows symlinks; nothing outside it is touched)."""
    if staging.is_symlink():
        staging.unlink()
    elif staging.exists():
        shutil.rmtree(staging)


def staging_of(spec: JobSpec) -> Path | None:
    """The staging folder a relay leg uses (only ever a direct child of :func:`relay_root`)."""
    kind = finishers.kind_of(spec.tag or "")
    if kind == DOWN:
        where = Path(spec.destination.rstrip("/"))
    elif kind == UP and spec.sources:
        where = Path(spec.sources[0]).parent
    else:
        return None
    root = relay_root()
    if where.parent.resolve() != root.resolve():
        return None
    try:
        return safe_join(root, where.name)
    except FerryError:
        return None


def _in_use(journal: Journal | None) -> set[str]:
    if journal is None:
        return set()
    used = set()
    for job in journal.job_rows(unfinished_only=True):
        staging = staging_of(job.spec)
        if staging is not None:
            used.add(staging.name)
    return used


def sweep_stale_staging(journal: Journal | None = None) -> int:
    """Remove staging folders whose owning process is gone and that no unfinished relay leg
    in ``journal`` uses. Returns how many were removed."""
    root = relay_root()
    used = _in_use(journal)
    removed = 0
    for entry in os.scandir(root):
        pid_text = entry.name.split("-", 1)[0]
        if entry.name in used:
            continue
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError, FerryError):
            _remove_staging(safe_join(root, entry.name))
            removed += 1
    return removed


def new_staging() -> Path:
    """A fresh, empty, private staging folder for one relay."""
    root = relay_root()
    staging = safe_join(root, f"{os.getpid()}-{secrets.token_hex(8)}")
    os.mkdir(staging, 0o700)
    return staging


async def _drop_staging(staging: Path | None) -> None:
    if staging is None:
        return
    try:
        await asyncio.to_thread(_remove_staging, staging)
    except OSError as exc:
        log.warning("could not remove relay staging %s: %s", staging, exc)


# -- the two legs as journaled jobs -------------------------------------------------------------


def _tag(kind: str, detail: dict[str, Any]) -> str:
    return f"{kind}:{json.dumps(detail, sort_keys=True, separators=(',', ':'))}"


def _detail(tag: str | None) -> dict[str, Any]:
    try:
        data = json.loads((tag or "").split(":", 1)[1])
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def download_leg(spec: RelaySpec, staging: Path, *, move: bool) -> JobSpec:
    """The first leg: every source from the source site into ``staging``."""
    return JobSpec(
        "get", spec.source_site, list(spec.sources), str(staging) + "/",
        recursive=spec.recursive, on_conflict="overwrite", verify=spec.verify,
        tag=_tag(DOWN, {"to": spec.dest_site, "dest": spec.destination, "inside": spec.inside,
                        "move": move, "on_conflict": spec.on_conflict}),
    )


def follows(job: JobRow) -> int | None:
    """The download leg an upload leg follows (None: not an upload leg)."""
    if finishers.kind_of(job.spec.tag or "") != UP:
        return None
    origin = _detail(job.spec.tag).get("from")
    return origin if isinstance(origin, int) else None


def same_relay(leg: JobSpec, spec: RelaySpec, *, move: bool) -> bool:
    """Whether ``leg`` is the download leg of a relay of ``spec`` (an interrupted earlier run
    of the same command, which should be resumed rather than started again)."""
    if finishers.kind_of(leg.tag or "") != DOWN:
        return False
    detail = _detail(leg.tag)
    return (leg.site == spec.source_site and leg.sources == list(spec.sources)
            and detail.get("to") == spec.dest_site and detail.get("dest") == spec.destination
            and detail.get("inside", True) == spec.inside and detail.get("move") == move)


def next_leg(journal: Journal, job_id: int) -> int | None:
    """The upload leg the download leg ``job_id`` queued, if it has."""
    return next((j.id for j in journal.job_rows() if follows(j) == job_id), None)


def next_legs(journal: Journal, job_ids: Iterable[int]) -> list[int]:
    """The upload legs queued by any of ``job_ids`` (what a command must also wait for)."""
    wanted = set(job_ids)
    return [j.id for j in journal.job_rows() if follows(j) in wanted]


async def finish_download(ended: finishers.Finished) -> str | None:
    """The download leg ended: queue the upload leg, or (failed / cancelled / nothing staged)
    remove the staging folder."""
    engine, spec = ended.engine, ended.spec
    detail = _detail(spec.tag)
    staging = staging_of(spec)
    if staging is None or not detail:
        return None
    what = "move" if detail.get("move") else "copy"
    failed = [r for r in engine.journal.files(ended.job_id) if r.state == "failed"]
    if ended.state != "done" or failed:
        await _drop_staging(staging)
        kept = "; the originals stay" if detail.get("move") else ""
        return f"site-to-site {what}: the download {ended.state}: nothing was uploaded{kept}"
    if next_leg(engine.journal, ended.job_id) is not None:
        return None  # queued already (by a run of this finisher in a process that then died)
    staged = sorted(
        str(safe_join(staging, name)) for name in os.listdir(staging)
        if not name.endswith(PART_SUFFIX)
    ) if staging.is_dir() else []
    if not staged:
        await _drop_staging(staging)
        return NOTHING
    destination = detail["dest"]
    if detail.get("inside", True) and not destination.endswith("/"):
        destination += "/"
    up = await engine.submit(JobSpec(
        "put", detail["to"], staged, destination, recursive=spec.recursive,
        on_conflict=detail.get("on_conflict", "resume"), verify=spec.verify,
        tag=_tag(UP, {"from": ended.job_id, "move": bool(detail.get("move"))}),
    ))
    return f"site-to-site {what}: downloaded; the upload to {detail['to']} is job {up}"


async def finish_upload(ended: finishers.Finished) -> str | None:
    """The upload leg ended: settle a move's originals on the source site (only those whose
    both copies are done and verified), then remove the staging folder."""
    engine = ended.engine
    detail = _detail(ended.spec.tag)
    try:
        down: JobRow = engine.journal.job(int(detail.get("from", -1)))
    except (FerryError, TypeError, ValueError):
        return None
    note = None
    if detail.get("move"):
        note = await _settle_originals(ended, down)
    await _drop_staging(staging_of(down.spec) or staging_of(ended.spec))
    return note


async def _settle_originals(ended: finishers.Finished, down: JobRow) -> str:
    engine = ended.engine
    outcome = moves.MoveOutcome(ended.job_id, ended.state)
    uploaded = {os.path.realpath(r.src): r for r in engine.journal.files(ended.job_id)}
    candidates: list[tuple[moves.Original, str | None]] = []
    for row in engine.journal.files(down.id):
        reason = moves.why_kept(row, ended.state)
        if not row.dst:
            outcome.kept.append(moves.Kept(row.src, reason or "not copied"))
            continue
        if reason is None:
            up = uploaded.get(os.path.realpath(row.dst))
            reason = "not uploaded" if up is None else moves.why_kept(up, ended.state)
        candidates.append((moves.Original(row.src, row.size, row.mtime), reason))
    site = down.spec.site
    try:
        async with engine.borrow_sftp(site) as sftp:
            known = engine.site(site)
            base = known.remote_dir if known is not None else ""
            roots = [resolve(base, s) for s in down.spec.sources] if down.spec.recursive else []
            await moves.settle(moves.RemoteSide(sftp), outcome, candidates, roots)
    except FerryError as exc:
        settled = set(outcome.deleted) | {k.path for k in outcome.kept}
        outcome.kept.extend(moves.Kept(o.path, f"could not connect to delete it: {exc.message}")
                            for o, _ in candidates if o.path not in settled)
    return moves.record(engine, ended.spec, outcome, source_site=site)


finishers.register(DOWN, finish_download)
finishers.register(UP, finish_upload)


# -- running a relay from here ------------------------------------------------------------------


async def _report(on_progress: ProgressCallback | None, progress: RelayProgress) -> None:
    if on_progress is None:
        return
    try:
        result = on_progress(progress)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a caller's display bug must not break the copy
        log.exception("relay progress callback failed")


def _leg_error(engine: Any, status: JobStatus, leg: str) -> str:
    error = engine.job_error(status.id)
    message = (error.message if error is not None else None) or status.error or status.state
    failed = [f for f in engine.files(status.id) if f.state == "failed" and f.error]
    if failed and failed[0].error not in message:
        message = f"{message}: {failed[0].error}"
    return display_name(f"{leg} failed: {message}")


async def relay_copy(
    engine: Any, spec: RelaySpec, *, on_progress: ProgressCallback | None = None,
    cancel_on_exit: bool = True, move: bool = False,
) -> RelayResult:
    """Copy ``spec.sources`` from one site into ``spec.destination`` on another (or the same)
    site through ``engine`` (a started :class:`~backend.transfers.TransferEngine`); with
    ``move``, the originals are then settled as the module docstring says.

    Never raises for a failed or cancelled leg: the result says what happened. Raises
    :class:`UsageError` for a bad spec before anything is transferred. Cancelling the task
    cancels the running leg when ``cancel_on_exit`` (else the relay stays queued).
    """
    current: int | None = None
    down: int | None = None
    try:
        current = down = await submit_relay(engine, spec, move=move)
        await _report(on_progress, RelayProgress("download", down))
        status = await engine.wait(down)
        current = None
        if status.state != "done" or status.files_failed:
            return await _finish(on_progress, RelayResult(
                "cancelled" if status.state == "cancelled" else "failed", down,
                files_failed=status.files_failed, error=_leg_error(engine, status, "download"),
            ))
        up = next_leg(engine.journal, down)
        if up is None:
            notes = engine.notes(down)
            if NOTHING in notes:
                return await _finish(on_progress, RelayResult("done", down, error=NOTHING))
            return await _finish(on_progress, RelayResult(
                "failed", down, error=display_name(notes[-1] if notes else
                                                   "the upload leg was not queued (see the log)")))
        current = up
        await _report(on_progress, RelayProgress("upload", up))
        status = await engine.wait(up)
        current = None
        moved = moves.outcome_of(engine, up) if move else None
        if status.state != "done" or status.files_failed:
            return await _finish(on_progress, RelayResult(
                "cancelled" if status.state == "cancelled" else "failed", down, up,
                files_done=status.files_done, files_failed=status.files_failed,
                error=_leg_error(engine, status, "upload"), move=moved,
            ))
        error = None
        if moved is not None and not moved.complete:
            kept = [*moved.kept, *moved.folders_kept]
            error = display_name(f"copied, but {len(kept)} original(s) stay: "
                                 f"{kept[0].path} ({kept[0].reason})")
        return await _finish(on_progress, RelayResult(
            "done", down, up, files_done=status.files_done, error=error,
            sources_deleted=moved is not None and moved.complete, move=moved))
    except asyncio.CancelledError:
        if current is not None and cancel_on_exit:
            with contextlib.suppress(Exception):
                await asyncio.shield(engine.cancel(current))
        raise


async def submit_relay(engine: Any, spec: RelaySpec, *, move: bool) -> int:
    """Queue a relay's download leg (its finisher queues the upload leg); returns its job id.
    Raises :class:`UsageError` for a bad spec before anything is queued."""
    spec.validate()
    if move and any(not s.startswith("/") for s in spec.sources):
        raise UsageError("a move between sites needs absolute source paths")
    with contextlib.suppress(OSError):
        sweep_stale_staging(engine.journal)
    staging = await asyncio.to_thread(new_staging)
    try:
        return int(await engine.submit(download_leg(spec, staging, move=move)))
    except BaseException:
        await asyncio.shield(_drop_staging(staging))
        raise


async def _finish(on_progress: ProgressCallback | None, result: RelayResult) -> RelayResult:
    await _report(on_progress, RelayProgress(result.state, error=result.error))
    return result


async def relay_move(
    engine: Any, spec: RelaySpec, *, on_progress: ProgressCallback | None = None,
    cancel_on_exit: bool = True,
) -> RelayResult:
    """:func:`relay_copy` as a move: each original on the source site is deleted once both
    of its copies are done and verified (by the upload leg's finisher, wherever it ends).
    Source paths must be absolute so the delete removes exactly what was copied."""
    return await relay_copy(engine, spec, on_progress=on_progress,
                            cancel_on_exit=cancel_on_exit, move=True)
