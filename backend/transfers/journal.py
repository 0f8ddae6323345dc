"""The persistent transfer queue: jobs and their files in SQLite (WAL) under state_dir().

The journal is the single source of truth that survives ``kill -9``: a job's spec, state and
priority; each file's source, destination, size, state, bytes done and *verified offset* (the
contiguous prefix known to be written, from which an interrupted file resumes). Several
processes share it: an engine claims a job by writing its owner (``pid:nonce``) and a
heartbeat; a job whose owner process is gone (or silent for :data:`STALE_AFTER` s) can be
claimed by anyone. Another process controls a job by changing its state here
(``ferry queue pause``); the owning engine polls and obeys.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import db
from backend.errors import UsageError
from backend.fsutil import ensure_private_dir, pid_alive
from backend.transfers.model import (
    FINISHED_STATES,
    FileStatus,
    JobSpec,
    JobStatus,
)

STALE_AFTER = 15.0  # seconds without a heartbeat before a live-looking owner is ignored

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    spec      TEXT NOT NULL,
    direction TEXT NOT NULL,
    site      TEXT NOT NULL,
    label     TEXT NOT NULL,
    state     TEXT NOT NULL,
    priority  INTEGER NOT NULL,
    planned   INTEGER NOT NULL DEFAULT 0,
    error     TEXT,
    owner     TEXT,
    heartbeat REAL,
    created   REAL NOT NULL,
    updated   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    src        TEXT NOT NULL,
    dst        TEXT NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    mtime      REAL,
    mode       INTEGER,
    state      TEXT NOT NULL,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    offset     INTEGER NOT NULL DEFAULT 0,
    temp       TEXT,
    error      TEXT,
    sha256     TEXT,
    verify     TEXT,
    updated    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_job ON files(job_id, state);
"""



def _v1_tables(con: sqlite3.Connection) -> None:
    """Version 1: the tables as they were when schema versions began (a version-0 journal
    already has them)."""
    db.run_script(con, _SCHEMA)


SCHEMA = db.Schema("transfer queue", (_v1_tables,))
"""The journal's migrations, oldest first (backend/db.py): append one per schema change."""


@dataclass
class FileRow:
    """One file of a job, as stored (mutable copy the engine works on)."""

    id: int
    job_id: int
    src: str
    dst: str
    size: int
    mtime: float | None
    mode: int | None
    state: str
    bytes_done: int
    offset: int
    temp: str | None
    error: str | None
    sha256: str | None
    verify: str | None

    def status(self) -> FileStatus:
        return FileStatus(
            id=self.id,
            job_id=self.job_id,
            source=self.src,
            destination=self.dst,
            state=self.state,  # type: ignore[arg-type]  # a FileState kept as text
            size=self.size,
            bytes_done=self.bytes_done,
            offset=self.offset,
            error=self.error,
            sha256=self.sha256,
            verify=self.verify,
        )


@dataclass
class NewFile:
    """A file found while planning a job (before it has an id)."""

    src: str
    dst: str
    size: int = 0
    mtime: float | None = None
    mode: int | None = None
    state: str = "queued"
    error: str | None = None


@dataclass
class JobRow:
    id: int
    spec: JobSpec
    state: str
    priority: int
    planned: bool
    error: str | None
    owner: str | None
    heartbeat: float | None


def default_path() -> Path:
    from backend.paths import state_dir

    return state_dir() / "transfers.sqlite"


def owner_alive(owner: str | None, heartbeat: float | None, me: str | None = None) -> bool:
    """Whether ``owner`` (``pid:nonce``) is a live engine other than ``me``."""
    if not owner or owner == me:
        return False
    try:
        pid = int(owner.split(":", 1)[0])
    except ValueError:
        return False
    if not pid_alive(pid):
        return False
    return heartbeat is not None and time.time() - heartbeat < STALE_AFTER


class Journal:
    """The queue database. Methods are short transactions; safe across processes and threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        ensure_private_dir(self.path.parent)
        self._local = threading.local()
        new = not self.path.exists()
        db.open_schema(self._con(), self.path, SCHEMA)
        if new:
            db.private_files(self.path)

    # -- plumbing -------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = db.connect(self.path, SCHEMA.what)
            self._local.con = con
        return con

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return db.transaction(self._con(), SCHEMA.what, self.path)

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- jobs -----------------------------------------------------------------------------
    def add_job(self, spec: JobSpec, owner: str | None = None) -> int:
        now = time.time()
        with self._tx() as con:
            top = con.execute("SELECT COALESCE(MAX(priority), 0) FROM jobs").fetchone()[0]
            cur = con.execute(
                "INSERT INTO jobs(spec, direction, site, label, state, priority, owner, heartbeat,"
                " created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    json.dumps(spec.to_json()),
                    spec.direction,
                    spec.site,
                    spec.label,
                    "queued",
                    top + 1,
                    owner,
                    now if owner else None,
                    now,
                    now,
                ),
            )
            return int(cur.lastrowid or 0)

    def _job_from(self, row: tuple[Any, ...]) -> JobRow:
        return JobRow(
            id=row[0],
            spec=JobSpec.from_json(json.loads(row[1])),
            state=row[2],
            priority=row[3],
            planned=bool(row[4]),
            error=row[5],
            owner=row[6],
            heartbeat=row[7],
        )

    _JOB_COLS = "id, spec, state, priority, planned, error, owner, heartbeat"

    def job(self, job_id: int) -> JobRow:
        row = self._con().execute(
            f"SELECT {self._JOB_COLS} FROM jobs WHERE id=?", (job_id,)  # noqa: S608 - fixed column lists and ? placeholders only
        ).fetchone()
        if row is None:
            raise UsageError(f"no transfer job {job_id}", hint="see 'ferry queue list'")
        return self._job_from(row)

    def job_rows(self, *, unfinished_only: bool = False) -> list[JobRow]:
        sql = f"SELECT {self._JOB_COLS} FROM jobs"  # noqa: S608 - fixed column lists and ? placeholders only
        if unfinished_only:
            sql += " WHERE state IN ('queued','running','paused')"
        sql += " ORDER BY priority, id"
        return [self._job_from(r) for r in self._con().execute(sql).fetchall()]

    def find_unfinished(self, spec: JobSpec) -> JobRow | None:
        """An unfinished job with exactly this spec (so a re-run command adopts it)."""
        text = json.dumps(spec.to_json())
        row = self._con().execute(
            f"SELECT {self._JOB_COLS} FROM jobs WHERE spec=? AND state IN"  # noqa: S608 - fixed column lists and ? placeholders only
            " ('queued','running','paused') ORDER BY id DESC LIMIT 1",
            (text,),
        ).fetchone()
        return self._job_from(row) if row else None

    def set_job_state(self, job_id: int, state: str, error: str | None = None) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE jobs SET state=?, error=?, updated=? WHERE id=?",
                (state, error, time.time(), job_id),
            )

    def request_state(self, job_id: int, state: str, allowed_from: Iterable[str]) -> str:
        """Change a job's state if it is currently in ``allowed_from``; returns the old state."""
        allowed = tuple(allowed_from)
        with self._tx() as con:
            row = con.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise UsageError(f"no transfer job {job_id}", hint="see 'ferry queue list'")
            old = str(row[0])
            if old not in allowed:
                raise UsageError(f"job {job_id} is {old}; cannot make it {state}")
            con.execute(
                "UPDATE jobs SET state=?, updated=? WHERE id=?", (state, time.time(), job_id)
            )
            if state in ("queued",):
                con.execute("UPDATE jobs SET error=NULL WHERE id=?", (job_id,))
            return old

    def states(self, job_ids: Iterable[int]) -> dict[int, str]:
        ids = list(job_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._con().execute(
            f"SELECT id, state FROM jobs WHERE id IN ({marks})", ids  # noqa: S608 - fixed column lists and ? placeholders only
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def claim(self, job_id: int, me: str) -> bool:
        """Take ownership of an unfinished job unless another live engine holds it."""
        with self._tx() as con:
            row = con.execute(
                "SELECT state, owner, heartbeat FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            if row is None or row[0] in FINISHED_STATES or row[0] == "paused":
                return False
            if owner_alive(row[1], row[2], me):
                return False
            con.execute(
                "UPDATE jobs SET owner=?, heartbeat=?, updated=? WHERE id=?",
                (me, time.time(), time.time(), job_id),
            )
            return True

    def release(self, job_id: int, me: str) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE jobs SET owner=NULL, heartbeat=NULL WHERE id=? AND owner=?", (job_id, me)
            )

    def heartbeat(self, me: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE jobs SET heartbeat=? WHERE owner=?", (time.time(), me))

    def owned_by_other(self, job: JobRow, me: str) -> bool:
        return owner_alive(job.owner, job.heartbeat, me)

    def move(self, job_id: int, delta: int) -> None:
        """Move a job ``delta`` places later (positive) or earlier (negative) in the queue."""
        with self._tx() as con:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT id FROM jobs WHERE state IN ('queued','running','paused')"
                    " ORDER BY priority, id"
                ).fetchall()
            ]
            if job_id not in ids:
                raise UsageError(f"job {job_id} is not waiting in the queue")
            pos = ids.index(job_id)
            ids.pop(pos)
            ids.insert(max(0, min(len(ids), pos + delta)), job_id)
            base = con.execute("SELECT COALESCE(MIN(priority), 1) FROM jobs").fetchone()[0]
            for i, jid in enumerate(ids):
                con.execute("UPDATE jobs SET priority=? WHERE id=?", (base + i, jid))

    def mark_planned(self, job_id: int, files: list[NewFile]) -> None:
        now = time.time()
        with self._tx() as con:
            con.execute("DELETE FROM files WHERE job_id=?", (job_id,))
            con.executemany(
                "INSERT INTO files(job_id, src, dst, size, mtime, mode, state, error, updated)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (job_id, f.src, f.dst, f.size, f.mtime, f.mode, f.state, f.error, now)
                    for f in files
                ],
            )
            con.execute("UPDATE jobs SET planned=1, updated=? WHERE id=?", (now, job_id))

    def remove_finished(self) -> int:
        with self._tx() as con:
            cur = con.execute("DELETE FROM jobs WHERE state IN ('done','failed','cancelled')")
            return cur.rowcount

    # -- files ----------------------------------------------------------------------------
    _FILE_COLS = (
        "id, job_id, src, dst, size, mtime, mode, state, bytes_done, offset, temp, error,"
        " sha256, verify"
    )

    def files(self, job_id: int) -> list[FileRow]:
        rows = self._con().execute(
            f"SELECT {self._FILE_COLS} FROM files WHERE job_id=? ORDER BY id", (job_id,)  # noqa: S608 - fixed column lists and ? placeholders only
        ).fetchall()
        return [FileRow(*r) for r in rows]

    def update_file(self, row: FileRow) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE files SET dst=?, size=?, mtime=?, mode=?, state=?, bytes_done=?,"
                " offset=?, temp=?, error=?, sha256=?, verify=?, updated=? WHERE id=?",
                (
                    row.dst, row.size, row.mtime, row.mode, row.state, row.bytes_done,
                    row.offset, row.temp, row.error, row.sha256, row.verify, time.time(), row.id,
                ),
            )

    def save_offsets(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """Batch ``(file_id, bytes_done, offset)`` checkpoints in one transaction."""
        items = [(b, o, time.time(), i) for i, b, o in rows]
        if not items:
            return
        with self._tx() as con:
            con.executemany(
                "UPDATE files SET bytes_done=?, offset=?, updated=? WHERE id=?", items
            )

    def reset_files(self, job_id: int, states: Iterable[str]) -> None:
        """Put files in ``states`` back in the queue (offsets kept, so they resume)."""
        marks = tuple(states)
        with self._tx() as con:
            con.execute(
                f"UPDATE files SET state='queued', error=NULL WHERE job_id=? AND state IN"  # noqa: S608 - fixed column lists and ? placeholders only
                f" ({','.join('?' * len(marks))})",
                (job_id, *marks),
            )

    def totals(self) -> dict[int, dict[str, int]]:
        """Per job: bytes_total, bytes_done, files_total, and a count per file state."""
        out: dict[int, dict[str, int]] = {}
        for job_id, state, n, size, done in self._con().execute(
            "SELECT job_id, state, COUNT(*), SUM(size), SUM(bytes_done) FROM files"
            " GROUP BY job_id, state"
        ):
            t = out.setdefault(job_id, {"bytes_total": 0, "bytes_done": 0, "files_total": 0})
            t["files_total"] += n
            t["bytes_total"] += size or 0
            t["bytes_done"] += (size or 0) if state in ("done", "skipped") else (done or 0)
            t[state] = t.get(state, 0) + n
        return out

    def statuses(self) -> list[JobStatus]:
        totals = self.totals()
        out = []
        for job in self.job_rows():
            t = totals.get(job.id, {})
            out.append(
                JobStatus(
                    id=job.id,
                    direction=job.spec.direction,
                    site=job.spec.site,
                    label=job.spec.label,
                    state=job.state,  # type: ignore[arg-type]  # a JobState kept as text
                    bytes_done=t.get("bytes_done", 0),
                    bytes_total=t.get("bytes_total", 0),
                    files_done=t.get("done", 0),
                    files_total=t.get("files_total", 0),
                    files_failed=t.get("failed", 0),
                    files_skipped=t.get("skipped", 0),
                    error=job.error,
                    priority=job.priority,
                    spec=job.spec,
                )
            )
        return out


def forget_finished(journal: Journal, job_ids: Iterable[int] | None = None) -> list[int]:
    """Forget finished jobs (done, failed, cancelled): all of them, or those of ``job_ids``
    that are finished; their file rows go with them. Unfinished jobs are never touched, and
    nothing on disk or on a server is. Returns the ids forgotten (the TUI queue panel's ``C``
    and ``ferry queue clear``; docs/transfers.md)."""
    wanted = None if job_ids is None else sorted(set(job_ids))
    with journal._tx() as con:
        sql = "SELECT id FROM jobs WHERE state IN ('done','failed','cancelled')"
        ids = [r[0] for r in con.execute(sql).fetchall()]
        if wanted is not None:
            ids = [i for i in ids if i in wanted]
        con.executemany("DELETE FROM jobs WHERE id=?", [(i,) for i in ids])
    return ids
