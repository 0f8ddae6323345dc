"""The one transfer engine: runs the persistent queue, reports progress, obeys control.

Usage (the TUI and the CLI both drive exactly this)::

    engine = TransferEngine(connector)          # connector(site_name) -> (Site, connection)
    await engine.start()                        # resumes unfinished jobs from the journal
    unsubscribe = engine.subscribe(on_event)    # TransferEvent: job / file / progress
    job_id = await engine.submit(JobSpec("get", "pacs", ["outbox/case1"], "./cases",
                                         recursive=True))
    await engine.pause(job_id); await engine.resume(job_id); await engine.move(job_id, -1)
    status = await engine.wait(job_id)          # JobStatus once done / failed / cancelled
    await engine.stop()                         # running work paused, kept resumable

Jobs run concurrently up to ``Site.max_parallel`` per site; inside a job up to
``JobSpec.parallel`` files move at once (default :data:`FILES_AT_ONCE`). A dropped connection
is re-established with bounded exponential back-off (:class:`RetryPolicy`) and each file
continues from its verified offset. The journal is checkpointed about once a second, so after
``kill -9`` the next engine resumes where the last checkpoint left off. State changes made by
another process (``ferry queue pause 3``) are noticed within :data:`POLL` seconds.
Progress events are coalesced to at most 10 per second per job; the per-block hot path only
adds to counters. Every finished file is written to the audit log. A job whose spec carries a
``tag`` is completed by its kind's finisher when it ends, in whichever process ends it
(:mod:`backend.transfers.finishers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import asyncssh

from backend.audit import AuditLog
from backend.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    FerryError,
    HostKeyChangedError,
    HostKeyUnknownError,
    IntegrityError,
    UsageError,
    VaultError,
)
from backend.names import display_name
from backend.remote import translate_sftp_error
from backend.sites.model import Site
from backend.tasks import cancel_and_wait, ended
from backend.transfers import finishers
from backend.transfers.copier import (
    DOWNLOAD_LANES,
    SPLIT_DOWNLOAD_AT,
    SPLIT_UPLOAD_AT,
    UPLOAD_LANES,
    Outcome,
    Plan,
    download,
    download_lanes,
    run_all,
    upload,
)
from backend.transfers.crypt import Cipher
from backend.transfers.journal import FileRow, JobRow, Journal, forget_finished
from backend.transfers.model import (
    FINISHED_STATES,
    FileStatus,
    JobSpec,
    JobStatus,
    TransferEvent,
    verified_label,
)
from backend.transfers.planner import plan_get, plan_put, restore_folders
from backend.transfers.pool import LANE_BUSY, Connector, SitePool
from backend.transfers.subscribers import Subscribers
from backend.transfers.verify import RemoteHasher

__all__ = ["Connector", "RetryPolicy", "TransferEngine"]

log = logging.getLogger("ferry.transfers")

FILES_AT_ONCE = 64
TICK = 0.1  # progress coalescing interval (≤ 10 events/s per job)
POLL = 0.5  # journal poll for other processes' control and new jobs
CHECKPOINT = 1.0  # how often verified offsets reach the journal
IO_RETRIES = 2  # server-side I/O errors retried (resuming) before a file fails

KeyProvider = Callable[[Site], Awaitable[bytes]]
_FATAL_CONNECT = (AuthError, HostKeyChangedError, HostKeyUnknownError, ConfigError, VaultError)


@dataclass(frozen=True)
class RetryPolicy:
    """Reconnect back-off: ``attempts`` tries per file, delays doubling up to ``max_delay``."""

    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.first_delay * 2.0 ** max(0, attempt - 1))


class _Stopped(Exception):
    pass


@dataclass(eq=False)
class _Live:
    """A job this engine is running: counters read by the ticker."""

    job: JobRow
    task: asyncio.Task[None] | None = None
    state: str = "running"
    bytes_done: int = 0
    bytes_total: int = 0
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    speed: float = 0.0
    error: str | None = None
    stop_reason: str | None = None
    dirty: dict[int, FileRow] = field(default_factory=dict)
    running: dict[int, FileRow] = field(default_factory=dict)
    last_bytes: int = 0
    last_time: float = field(default_factory=time.monotonic)
    last_sent: int = -1
    planned: bool = False

    @property
    def eta(self) -> float | None:
        left = self.bytes_total - self.bytes_done
        if self.speed <= 1 or left <= 0:
            return None if left > 0 else 0.0
        return left / self.speed


class _FileProgress:
    """Per-file counters the copier bumps on every block (O(1))."""

    __slots__ = ("live", "row")

    def __init__(self, live: _Live, row: FileRow) -> None:
        self.live = live
        self.row = row

    def add(self, n: int) -> None:
        self.row.bytes_done += n
        self.live.bytes_done += n

    def checkpoint(self, offset: int) -> None:
        self.row.offset = offset
        self.live.dirty[self.row.id] = self.row

    def restart(self, offset: int) -> None:
        self.live.bytes_done += offset - self.row.bytes_done
        self.row.bytes_done = offset
        self.row.offset = offset
        self.live.dirty[self.row.id] = self.row


def _classify(exc: BaseException) -> str:
    """conn (reconnect and resume), io (retry a little), integrity, fatal-job, or fatal."""
    if isinstance(exc, _FATAL_CONNECT):
        return "fatal-job"
    if isinstance(exc, IntegrityError):
        return "integrity"
    orig = exc.__context__ if isinstance(exc, FerryError) and exc.__context__ else exc
    if isinstance(orig, ConnectError) or isinstance(exc, ConnectError):
        return "conn"
    if isinstance(orig, (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied,
                         FileNotFoundError, PermissionError, IsADirectoryError)):
        return "fatal"
    if isinstance(orig, (asyncssh.SFTPConnectionLost, asyncssh.ConnectionLost,
                         asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                         ConnectionError, TimeoutError, asyncio.TimeoutError, EOFError)):
        return "conn"
    if isinstance(orig, asyncssh.SFTPError):
        return "io"
    if isinstance(orig, ValueError) and "closed file" in str(orig):
        return "conn"
    return "fatal"


def lanes_wanted(direction: str, todo: list[FileRow], width: int,
                 download: int = DOWNLOAD_LANES, *, multi_lane_uploads: bool = True) -> int:
    """How many SFTP lanes a job will use, so they can be opened together up front: big
    files split over :data:`UPLOAD_LANES` / ``download`` lanes (:func:`download_lanes`),
    except uploads to a server that takes each file on one channel, in order (its server
    profile, backend/sites/profile.py); many files spread ``LANE_BUSY`` to a lane."""
    many = -(-width // LANE_BUSY) if width > 1 else 1
    if direction == "put" and multi_lane_uploads and any(r.size >= SPLIT_UPLOAD_AT
                                                         for r in todo):
        return max(many, UPLOAD_LANES)
    if direction == "get" and any(r.size >= SPLIT_DOWNLOAD_AT for r in todo):
        return max(many, download)
    return many


def lanes_before_planning(spec: JobSpec) -> int:
    """Lanes worth opening together with the first one, before planning: an upload of a big
    local file will split over :data:`UPLOAD_LANES`, and its size is known without the
    server (opening them while the job plans saves their ~0.3-0.5 s at 40 ms RTT)."""
    if spec.direction != "put":
        return 1
    for source in spec.sources:
        with contextlib.suppress(OSError):
            st = os.stat(source)
            if stat.S_ISREG(st.st_mode) and st.st_size >= SPLIT_UPLOAD_AT:
                return UPLOAD_LANES
    return 1


_T = TypeVar("_T")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a shielded journal call's failure as seen when its caller was cancelled first
    (the caller that did wait got it raised)."""
    if not fut.cancelled():
        fut.exception()


class TransferEngine:
    """The queue runner. All methods run on one asyncio loop; callbacks are called on it."""

    def __init__(
        self,
        connector: Connector,
        *,
        journal: Journal | None = None,
        audit: AuditLog | None = None,
        retry: RetryPolicy | None = None,
        key_provider: KeyProvider | None = None,
        run_all_jobs: bool = True,
    ) -> None:
        """``run_all_jobs=False``: only run jobs submitted or adopted by this engine (the CLI's
        ``ferry get``); True: also every unfinished job in the journal nobody else runs."""
        self._connector = connector
        self.journal = journal or Journal()
        self.audit = audit or AuditLog()
        self.retry_policy = retry or RetryPolicy()
        self._key_provider = key_provider
        self._run_all = run_all_jobs
        self.me = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._live: dict[int, _Live] = {}
        self._mine: set[int] = set()
        self._pools: dict[str, SitePool] = {}
        self._hashers: dict[str, RemoteHasher] = {}
        self._limits: dict[str, int] = {}
        self._subs = Subscribers()
        self._finished: dict[int, asyncio.Event] = {}
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._started = False
        self._errors: dict[int, FerryError] = {}
        self._audit_rows: list[tuple[str, dict[str, object]]] = []
        self._audit_writer: asyncio.Task[None] | None = None
        self._notes: dict[int, list[str]] = {}
        self._journal_thread: ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start running the queue (unfinished jobs from the journal resume)."""
        if self._started:
            return
        self._started = True
        self._wake = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._main_loop())

    async def stop(self) -> None:
        """Stop cleanly: running jobs go back to ``queued`` with their offsets saved."""
        if not self._started:
            return
        self._started = False
        self._poke()
        if self._loop_task is not None:
            crashed = await cancel_and_wait(self._loop_task)
            if crashed is not None:
                log.error("the transfer queue loop had crashed: %r", crashed)
        lives = list(self._live.values())
        for live in lives:
            self._stop_job(live, "queued")
        await asyncio.gather(*(lv.task for lv in lives if lv.task), return_exceptions=True)
        await self._flush_audit()
        for hasher in self._hashers.values():
            hasher.close()
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        self._hashers.clear()
        if self._journal_thread is not None:
            # a claim that completed while stop() cancelled the loop: give the job back
            for job in await self._j(functools.partial(self.journal.job_rows,
                                                       unfinished_only=True)):
                if job.owner == self.me:
                    await self._j(self.journal.release, job.id, self.me)
            await self._j(self.journal.close)  # that thread's connection; every write is in
            self._journal_thread.shutdown(wait=False)
            self._journal_thread = None

    # -- control --------------------------------------------------------------------------
    async def submit(self, spec: JobSpec) -> int:
        """Queue a job; returns its id. It starts as soon as its site has a free slot."""
        spec.validate()
        # owned from the start: another engine (the agent) polling the journal cannot take
        # it before this one's next schedule
        job_id = await self._j(self.journal.add_job, spec, self.me)
        self._mine.add(job_id)
        self._emit(TransferEvent("job", job_id, "queued"))
        self._poke()
        return job_id

    async def adopt(self, spec: JobSpec) -> int:
        """Like :meth:`submit`, but continue an unfinished identical job left by a crashed or
        killed run instead of starting over (what re-running a ``ferry get`` does)."""
        spec.validate()
        row = await self._j(self.journal.find_unfinished, spec)
        if row is not None and not self.journal.owned_by_other(row, self.me):
            if row.state == "paused":
                await self._j(self.journal.request_state, row.id, "queued", ["paused"])
            self._mine.add(row.id)
            self._poke()
            return row.id
        return await self.submit(spec)

    async def pause(self, job_id: int) -> None:
        await self._j(self.journal.request_state, job_id, "paused", ["queued", "running"])
        live = self._live.get(job_id)
        if live is not None:
            self._stop_job(live, "paused")
            if live.task is not None:
                await ended(live.task)
        self._emit(TransferEvent("job", job_id, "paused"))

    async def resume(self, job_id: int) -> None:
        await self._j(self.journal.request_state, job_id, "queued",
                      ["paused", "queued", "running"])
        self._mine.add(job_id)
        self._emit(TransferEvent("job", job_id, "queued"))
        self._poke()

    async def cancel(self, job_id: int) -> None:
        """Stop a job for good; its partial temp files are removed."""
        await self._j(self.journal.request_state, job_id, "cancelled",
                      ["queued", "running", "paused"])
        live = self._live.get(job_id)
        if live is not None:
            self._stop_job(live, "cancelled")
            if live.task is not None:
                await ended(live.task)
        if live is None or live.stop_reason != "cancelled":
            # not running, or it was already stopping for a pause (two clients of the agent:
            # docs/agent.md) and settled as paused: its temps are still there
            await self._cleanup_temps(job_id)
            job = await self._j(self.journal.job, job_id)
            await self._run_finisher(job_id, job.spec, "cancelled", None)
        self._finish_event(job_id)
        self._emit(TransferEvent("job", job_id, "cancelled"))

    async def retry(self, job_id: int) -> None:
        """Queue a failed or cancelled job again; failed files resume from their offsets."""
        await self._j(self.journal.request_state, job_id, "queued", ["failed", "cancelled", "done"])
        await self._j(self.journal.reset_files, job_id, ["failed", "cancelled"])
        self._mine.add(job_id)
        self._finished.pop(job_id, None)
        self._emit(TransferEvent("job", job_id, "queued"))
        self._poke()

    async def forget_finished(self, job_ids: Iterable[int] | None = None) -> list[int]:
        """Forget finished jobs (all, or those of ``job_ids``) that this engine is not still
        winding up: backend/transfers/journal.py ``forget_finished``, on the journal thread
        (a write: it may wait for another process's lock, never on the event loop)."""
        if job_ids is None:
            rows = await self._j(self.journal.job_rows)
            job_ids = [j.id for j in rows if j.state in FINISHED_STATES]
        return await self._j(forget_finished, self.journal,
                             [i for i in job_ids if i not in self._live])

    async def move(self, job_id: int, delta: int) -> None:
        """Move a waiting job ``delta`` places (negative: sooner)."""
        await self._j(self.journal.move, job_id, delta)
        job = await self._j(self.journal.job, job_id)
        self._emit(TransferEvent("job", job_id, job.state))
        self._poke()

    def subscribe(self, callback: Callable[[TransferEvent], None]) -> Callable[[], None]:
        return self._subs.add(callback)

    def jobs(self) -> list[JobStatus]:
        """Every job in the journal, with live figures for the ones running here."""
        out = []
        for status in self.journal.statuses():
            live = self._live.get(status.id)
            if live is not None:
                status = replace(
                    status,
                    state=live.state,  # type: ignore[arg-type]  # a JobState kept as text
                    bytes_done=live.bytes_done,
                    bytes_total=live.bytes_total or status.bytes_total,
                    speed=live.speed,
                    eta=live.eta,
                    files_done=live.files_done,
                    files_total=live.files_total or status.files_total,
                    files_failed=live.files_failed,
                    files_skipped=live.files_skipped,
                    error=live.error,
                )
            out.append(status)
        return out

    def job(self, job_id: int) -> JobStatus:
        for status in self.jobs():
            if status.id == job_id:
                return status
        raise UsageError(f"no transfer job {job_id}", hint="see 'ferry queue list'")

    def files(self, job_id: int) -> list[FileStatus]:
        live = self._live.get(job_id)
        rows = self.journal.files(job_id)
        if live is not None:
            rows = [live.running.get(r.id, r) for r in rows]
        return [r.status() for r in rows]

    def notes(self, job_id: int) -> list[str]:
        """What the finisher of a tagged job said when it ended here (one line each)."""
        return list(self._notes.get(job_id, []))

    def site(self, name: str) -> Site | None:
        """``name`` as its last connection here gave it (None before one opened)."""
        pool = self._pools.get(name)
        return pool.site if pool is not None else None

    @contextlib.asynccontextmanager
    async def borrow_sftp(self, site: str) -> AsyncIterator[asyncssh.SFTPClient]:
        """An SFTP session of ``site``'s pool for a short operation (a finisher's), opening a
        connection just for it when this engine has none (e.g. ``ferry queue cancel``)."""
        existing = self._pools.get(site)
        opened = existing is None or existing.closed
        pool = self._pool(site)
        try:
            lane = await pool.lane()
            try:
                yield lane.sftp
            finally:
                pool.release(lane)
        finally:
            if opened and not self._started:
                await pool.close()
                self._pools.pop(site, None)
                self._hashers.pop(site, None)

    async def discard_partial(self, job_id: int) -> None:
        """Remove a finished job's partial temp files now (as a cancel does): for a failed job
        nobody will retry. Temps that could not be removed stay named on their rows."""
        await self._cleanup_temps(job_id)

    def job_error(self, job_id: int) -> FerryError | None:
        """The error that failed a whole job here (auth, host key, config...), if any."""
        return self._errors.get(job_id)

    async def wait(self, job_id: int) -> JobStatus:
        """Until the job is done, failed or cancelled (by anyone); returns its final status."""
        while True:
            status = self.job(job_id)
            if status.state in FINISHED_STATES and job_id not in self._live:
                return status
            event = self._finished.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), POLL)

    async def _run_finisher(self, job_id: int, spec: JobSpec, state: str,
                            error: str | None) -> None:
        """A tagged job ended: its kind's finisher (backend/transfers/finishers.py) completes
        whatever asked for it; a finisher's failure is logged, never the job's."""
        if not spec.tag:
            return
        try:
            finisher = finishers.finisher_for(spec.tag)
            if finisher is None:
                log.warning("job %s: no finisher for tag %s", job_id, display_name(spec.tag))
                return
            note = await finisher(finishers.Finished(self, job_id, spec, state, error))
        except FerryError as exc:
            log.warning("job %s: finishing %s failed: %s", job_id, display_name(spec.tag), exc)
            note = f"job {job_id}: {exc.message}"
        except Exception:
            log.exception("job %s: finisher for %s crashed", job_id, display_name(spec.tag))
            return
        if note:
            log.info("job %s: %s", job_id, note)
            self._notes.setdefault(job_id, []).append(note)

    # -- internals: events ----------------------------------------------------------------
    def _emit(self, event: TransferEvent) -> None:
        self._subs.emit(event)

    def _job_event(self, live: _Live, kind: str = "job", path: str | None = None,
                   state: str | None = None, error: str | None = None,
                   row: FileRow | None = None) -> None:
        self._emit(TransferEvent(
            kind=kind,  # type: ignore[arg-type]  # callers pass an EventKind
            job_id=live.job.id,
            state=state or live.state,
            path=path,
            bytes_done=live.bytes_done,
            bytes_total=live.bytes_total,
            speed=live.speed,
            eta=live.eta,
            error=error if kind == "file" else live.error,
            files_done=live.files_done,
            files_total=live.files_total,
            files_failed=live.files_failed,
            destination=row.dst if row is not None else None,
            sha256=row.sha256 if row is not None else None,
            verify=row.verify if row is not None else None,
            note=row.error if row is not None and row.state == "done" else None,
        ))

    def _finish_event(self, job_id: int) -> None:
        self._finished.setdefault(job_id, asyncio.Event()).set()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- internals: the loop --------------------------------------------------------------
    async def _main_loop(self) -> None:
        last_poll = last_checkpoint = 0.0
        while self._started:  # (a cancel swallowed by wait_for still ends the loop)
            now = time.monotonic()
            self._tick(now)
            if now - last_checkpoint >= CHECKPOINT:
                last_checkpoint = now
                await self._checkpoint_all()
            if now - last_poll >= POLL or (self._wake is not None and self._wake.is_set()):
                last_poll = now
                assert self._wake is not None
                self._wake.clear()
                try:
                    await self._poll_control()
                    await self._schedule()
                except FerryError as exc:  # e.g. the journal is locked for too long
                    log.warning("transfer queue: %s", exc)
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)

    def _tick(self, now: float) -> None:
        for live in list(self._live.values()):
            elapsed = now - live.last_time
            if elapsed <= 0:
                continue
            rate = max(0, live.bytes_done - live.last_bytes) / elapsed
            live.speed = rate if live.speed == 0 else 0.7 * live.speed + 0.3 * rate
            live.last_bytes, live.last_time = live.bytes_done, now
            if live.planned and live.bytes_done != live.last_sent and live.state == "running":
                live.last_sent = live.bytes_done
                self._job_event(live, "progress")

    async def _checkpoint_all(self) -> None:
        for live in list(self._live.values()):
            await self._checkpoint(live)
        if self._live:
            with contextlib.suppress(FerryError, Exception):
                await self._j(self.journal.heartbeat, self.me)

    async def _checkpoint(self, live: _Live) -> None:
        dirty, live.dirty = live.dirty, {}
        if dirty:
            try:
                await self._j(self.journal.save_offsets,
                              [(r.id, r.bytes_done, r.offset) for r in dirty.values()])
            except Exception:
                live.dirty.update(dirty)
                raise

    async def _poll_control(self) -> None:
        if not self._live:
            return
        states = await self._j(self.journal.states, list(self._live))
        for job_id, state in states.items():
            live = self._live.get(job_id)
            if live is not None and state in ("paused", "cancelled") and live.stop_reason is None:
                self._stop_job(live, state)

    async def _schedule(self) -> None:
        if not self._started:
            return
        per_site: dict[str, int] = {}
        for live in self._live.values():
            per_site[live.job.spec.site] = per_site.get(live.job.spec.site, 0) + 1
        for job in await self._j(functools.partial(self.journal.job_rows, unfinished_only=True)):
            if job.id in self._live or job.state == "paused":
                continue
            if not self._run_all and job.id not in self._mine:
                continue
            site = job.spec.site
            # until a connection told us the site's max_parallel, run one job there
            if per_site.get(site, 0) >= self._limits.get(site, 1):
                continue
            if self.journal.owned_by_other(job, self.me):
                continue
            if not await self._j(self.journal.claim, job.id, self.me):
                continue
            per_site[site] = per_site.get(site, 0) + 1
            live = _Live(job=job)
            self._live[job.id] = live
            self._finished.setdefault(job.id, asyncio.Event()).clear()
            live.task = asyncio.get_running_loop().create_task(self._run_job(live))

    def _stop_job(self, live: _Live, reason: str) -> None:
        if live.stop_reason is None:
            live.stop_reason = reason
        if live.task is not None and not live.task.done():
            live.task.cancel()

    def _pool(self, site: str) -> SitePool:
        pool = self._pools.get(site)
        if pool is None or pool.closed:
            pool = self._pools[site] = SitePool(site, self._connector)
            self._hashers[site] = RemoteHasher(pool)
        return pool

    # -- internals: running a job ---------------------------------------------------------
    async def _connect(self, pool: SitePool, lanes: int = 1) -> Site:
        attempt = 0
        while True:
            try:
                return await pool.ensure_site(lanes)
            except FerryError as exc:
                if _classify(exc) != "conn":
                    raise
                attempt += 1
                if attempt >= self.retry_policy.attempts:
                    raise
                delay = self.retry_policy.delay(attempt)
                log.info("%s: %s; retrying in %.1fs", pool.name, exc, delay)
                await asyncio.sleep(delay)

    async def _cipher(self, site: Site) -> Cipher | None:
        if not site.encrypt_at_rest:
            return None
        if self._key_provider is None:
            raise ConfigError(
                f"site {site.name} encrypts at rest but no key is available here",
                hint=f"ferry vault import-key {site.name} --from FILE",
            )
        return Cipher(await self._key_provider(site))

    async def _run_job(self, live: _Live) -> None:
        job = live.job
        spec = job.spec
        final_state = "failed"
        try:
            await self._j(self.journal.set_job_state, job.id, "running")
            self._job_event(live)
            pool = self._pool(spec.site)
            site = await self._connect(pool, 1 if job.planned else lanes_before_planning(spec))
            if self._limits.get(spec.site) != site.max_parallel:
                self._limits[spec.site] = site.max_parallel
                self._poke()
            cipher = await self._cipher(site)
            if not job.planned:
                lane = await pool.lane()
                try:
                    planner = plan_get if spec.direction == "get" else plan_put
                    files = await planner(lane.sftp, site, spec)
                finally:
                    pool.release(lane)
                await self._j(self.journal.mark_planned, job.id, files)
            rows = await self._j(self.journal.files, job.id)
            live.files_total = len(rows)
            live.bytes_total = sum(r.size for r in rows)
            todo = []
            for r in rows:
                if r.state == "done":
                    live.files_done += 1
                    live.bytes_done += r.size
                elif r.state == "skipped":
                    live.files_skipped += 1
                    live.bytes_done += r.size
                elif r.state in ("failed", "cancelled"):
                    live.files_failed += 1
                else:
                    live.bytes_done += r.bytes_done
                    todo.append(r)
            if job.planned and todo:  # resumed or retried: its folders may have vanished
                lane = await pool.lane()
                try:
                    await restore_folders(lane.sftp, spec.direction, [r.dst for r in todo])
                finally:
                    pool.release(lane)
            live.planned = True
            self._announce_planned(live, rows)
            plan = Plan(site=site, pool=pool, hasher=self._hashers[spec.site],
                        on_conflict=spec.on_conflict, verify=spec.verify, cipher=cipher)
            queue = iter(todo)

            async def worker() -> None:
                for row in queue:
                    await self._run_file(live, plan, row)

            width = min(spec.parallel or FILES_AT_ONCE, len(todo))
            wanted = lanes_wanted(
                spec.direction, todo, width, download_lanes(pool.connection()),
                multi_lane_uploads=pool.policy is None or pool.policy.multi_lane_uploads)
            if spec.verify in ("sha256", "auto") and todo:
                plan.hasher.warm()
            warming = asyncio.ensure_future(pool.warm(wanted)) if wanted > 1 else None
            try:
                await run_all([worker() for _ in range(width)])
            finally:
                if warming is not None and not warming.done():
                    await cancel_and_wait(warming)
            failed = [r for r in await self._j(self.journal.files, job.id) if r.state == "failed"]
            if failed:
                live.error = f"{len(failed)} of {len(rows)} files failed"
                final_state = "failed"
            else:
                final_state = "done"
        except asyncio.CancelledError:
            final_state = live.stop_reason or "queued"
        except FerryError as exc:
            live.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
            self._errors[job.id] = exc
            final_state = "failed"
        except Exception as exc:  # a bug: keep the queue alive, report it on the job
            log.exception("transfer job %s crashed", job.id)
            live.error = f"internal error: {display_name(str(exc)) or type(exc).__name__}"
            final_state = "failed"
        await self._settle(live, final_state)

    def _announce_planned(self, live: _Live, rows: list[FileRow]) -> None:
        for r in rows:
            if r.state in ("failed", "skipped") and r.error:
                self._job_event(live, "file", path=r.src, state=r.state, error=r.error)

    async def _settle(self, live: _Live, final_state: str) -> None:
        job = live.job
        with contextlib.suppress(Exception):
            await self._checkpoint(live)
        for row in list(live.running.values()):
            if row.state == "running":
                row.state = "queued" if final_state != "cancelled" else "cancelled"
                with contextlib.suppress(Exception):
                    await self._save_row(row)
        if final_state == "cancelled":
            with contextlib.suppress(Exception):
                await self._cleanup_temps(job.id)
        await self._flush_audit()
        live.state = final_state
        if final_state in FINISHED_STATES:  # before wait() returns: callers see its effects
            # and before the journal says the job ended: a process killed while a finisher
            # runs (a move deleting its originals) leaves the job unfinished, so the next
            # engine runs it again, finds every file settled, and finishes it (idempotent)
            await self._run_finisher(job.id, job.spec, final_state, live.error)
        try:
            current = (await self._j(self.journal.job, job.id)).state
            if not (current in ("paused", "cancelled") and final_state in ("queued", "paused")):
                await self._j(self.journal.set_job_state, job.id, final_state, live.error)
            await self._j(self.journal.release, job.id, self.me)
        except FerryError as exc:
            log.warning("could not record job %s as %s: %s", job.id, final_state, exc)
        self._live.pop(job.id, None)
        self._job_event(live)
        if final_state in FINISHED_STATES:
            self._finish_event(job.id)
        self._poke()

    async def _run_file(self, live: _Live, plan: Plan, row: FileRow) -> None:
        progress = _FileProgress(live, row)
        row.state, row.error = "running", None
        live.running[row.id] = row
        await self._save_row(row)
        self._job_event(live, "file", path=row.src, state="running")
        runner = download if live.job.spec.direction == "get" else upload
        attempt = io_errors = 0
        integrity_restarted = zero_restarted = False
        restart_note: str | None = None  # said with the outcome: the file started over
        outcome: Outcome | None = None
        error: str | None = None
        while outcome is None and error is None:
            try:
                outcome = await runner(plan, row, progress, self._save_row)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = _classify(exc)
                message = self._message(exc, row)
                if kind == "fatal-job":
                    raise
                if kind == "integrity" and not integrity_restarted:
                    integrity_restarted = True
                    log.warning("%s; transferring it again from the start", message)
                    restart_note = f"restarted from zero: {message}"
                    row.offset = 0
                    progress.restart(0)
                    continue
                if kind == "io" and io_errors < IO_RETRIES:
                    io_errors += 1
                    plan.pool.prune()
                    await asyncio.sleep(self.retry_policy.delay(io_errors))
                    continue
                if kind == "io" and row.offset > 0 and not zero_restarted:
                    # continuing the partial copy keeps failing (a server that cannot append
                    # or reopen it): start over once instead of failing for ever
                    zero_restarted = True
                    log.warning("%s; transferring it again from the start", message)
                    restart_note = f"restarted from zero: continuing failed ({message})"
                    row.offset = 0
                    progress.restart(0)
                    continue
                if kind == "conn" and attempt + 1 < self.retry_policy.attempts:
                    attempt += 1
                    plan.pool.prune()
                    delay = self.retry_policy.delay(attempt)
                    log.info("%s: %s; reconnecting in %.1fs (attempt %d)",
                             live.job.spec.site, message, delay, attempt)
                    self._job_event(live, "file", path=row.src, state="retrying", error=message)
                    await asyncio.sleep(delay)
                    continue
                error = message
        live.running.pop(row.id, None)
        if outcome is not None:
            row.state = outcome.state
            row.dst = outcome.destination
            row.sha256, row.verify = outcome.sha256, outcome.verify
            # a done file's "error" column holds its note (e.g. why it restarted from zero)
            row.error = "; ".join(n for n in (restart_note, outcome.note) if n) or None
            if outcome.state == "done":
                live.files_done += 1
                row.offset = row.bytes_done = row.size
            else:
                live.files_skipped += 1
                live.bytes_done += row.size - row.bytes_done
                row.bytes_done = row.size
        else:
            row.state, row.error = "failed", error
            live.files_failed += 1
            log.warning("job %s: %s failed: %s", live.job.id, display_name(row.src), error)
        live.dirty.pop(row.id, None)
        await self._save_row(row)
        self._audit(live, plan, row)
        self._job_event(live, "file", path=row.src, state=row.state, error=row.error, row=row)

    @staticmethod
    def _message(exc: BaseException, row: FileRow) -> str:
        if isinstance(exc, FerryError):
            return exc.message
        err = translate_sftp_error(exc, row.src)
        return err.message

    async def _save_row(self, row: FileRow) -> None:
        """Record ``row`` as it is now (a copy: the loop goes on changing the original)."""
        await self._j(self.journal.update_file, replace(row))

    async def _j(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run a journal call on the journal thread, never on the event loop: a write may wait
        up to the busy timeout (backend/db.py) for another process's lock, and the TUI must
        not freeze meanwhile. One thread, so calls run in the order they were made. A caller
        cancelled while its call runs stays cancelled, but the call is shielded and still
        completes, as a synchronous call would have: the journal never misses a state the
        engine already acted on (kill -9 safety, docs/transfers.md)."""
        if self._journal_thread is None:
            self._journal_thread = ThreadPoolExecutor(1, thread_name_prefix="ferry-journal")
        fut = asyncio.get_running_loop().run_in_executor(
            self._journal_thread, functools.partial(call, *args))
        fut.add_done_callback(_retrieve)
        return await asyncio.shield(fut)

    def _audit(self, live: _Live, plan: Plan, row: FileRow) -> None:
        """Queue the file's audit row; a writer thread appends queued rows in one transaction
        each (one commit and head write per batch, never blocking the transfers). A job is
        only settled, and the engine only stops, once its rows are written."""
        if row.state == "skipped" and row.error != "destination exists":
            return
        spec = live.job.spec
        self._audit_rows.append(("transfer.file", dict(
            job=live.job.id,
            site=spec.site,
            host=plan.site.host,
            direction="download" if spec.direction == "get" else "upload",
            source=row.src,
            destination=row.dst,
            size=row.size,
            sha256=row.sha256,
            verify=row.verify,
            # how the file was checked, in words; sha256 is of the server's copy only when
            # verify is sha256-server or sha256-readback (model.SHA256_OF_SERVER_COPY)
            verified_by=verified_label(row.verify) if row.state == "done" else None,
            encrypted=plan.cipher is not None,
            result=row.state,
            error=row.error if row.state == "failed" else None,
            # a done file's note: e.g. restarted from zero, or an old copy left beside it
            note=row.error if row.state == "done" else None,
        )))
        if self._audit_writer is None or self._audit_writer.done():
            self._audit_writer = asyncio.get_running_loop().create_task(self._write_audit())

    async def _write_audit(self) -> None:
        while self._audit_rows:
            batch, self._audit_rows = self._audit_rows, []
            try:
                await asyncio.to_thread(self.audit.append_many, batch)
            except Exception:
                log.exception("could not write %d audit rows", len(batch))

    async def _flush_audit(self) -> None:
        while self._audit_writer is not None and not self._audit_writer.done():
            await asyncio.shield(self._audit_writer)

    async def _cleanup_temps(self, job_id: int) -> None:
        """Remove partial temp files of a cancelled job (ours by name; never final files).
        Remote ones need a connection: one is opened if none is (a job cancelled while
        paused, e.g. by ``ferry queue cancel`` in another process); a temp that cannot be
        removed stays recorded on its row and is named in the log."""
        rows = await self._j(self.journal.files, job_id)
        job = await self._j(self.journal.job, job_id)
        remote: list[FileRow] = []
        for row in rows:
            if row.state in ("done", "skipped") or not row.temp or row.temp == row.dst:
                continue
            if row.state != "failed":
                row.state = "cancelled"
            row.offset = 0
            if job.spec.direction == "get":
                with contextlib.suppress(OSError):
                    if not os.path.islink(row.temp):
                        os.unlink(row.temp)
                row.temp = None
            else:
                remote.append(row)
            await self._save_row(row)
        if remote:
            await self._remove_remote_temps(job_id, job.spec.site, remote)

    async def _remove_remote_temps(self, job_id: int, site: str, rows: list[FileRow]) -> None:
        existing = self._pools.get(site)
        if existing is not None and existing.closed:
            return  # stopping: the journal keeps the names
        pool = self._pool(site)
        try:
            try:
                lane = await pool.lane()
            except FerryError as exc:
                log.warning("job %s: partial uploads left on %s (%s): %s", job_id, site,
                            exc.message, ", ".join(display_name(r.temp or "") for r in rows))
                return
            try:
                for row in rows:
                    try:
                        await lane.sftp.remove(row.temp or "")
                    except asyncssh.SFTPNoSuchFile:
                        pass
                    except asyncssh.Error as exc:
                        log.warning("job %s: cannot remove %s: %s", job_id,
                                    display_name(row.temp or ""), display_name(str(exc)))
                        continue
                    row.temp = None
                    await self._save_row(row)
            finally:
                pool.release(lane)
        finally:
            if existing is None and not self._started:  # opened just for this
                await pool.close()
                self._pools.pop(site, None)
