"""The case state store: one row per case/study per site, in SQLite under state_dir().

``$FERRY_HOME/state/cases.sqlite`` (next to the transfer journal) holds, per ``(site,
case_id)``: the state (:data:`STATES`), when it was sent / seen ready / downloaded / archived,
the uploaded zip's SHA-256 and size, the local source, the remote and local paths, the text
report found among the results, and the result folder's last signature. A second table keeps
what the watcher saw at its previous poll, so the "stable across two consecutive polls" rule
also holds across restarts and for ``ferry case watch --once`` run from cron. WAL mode and a
busy timeout let the TUI and a headless watcher share the file.

A send is journaled (backend/cases/sendjob.py): its row exists as ``sending`` before the upload
starts, with the transfer job's id and the remote folders the send created (so a cancelled or
failed send can remove them), and becomes ``sent`` with ``verified_by`` (the method,
backend/transfers/model.py VERIFIED_BY) or ``send failed`` with a ``note`` saying what was left.
``deidentified`` marks a case sent as a de-identified copy: the link from its pseudonyms to the
original patient is in the vault (backend/dicom/mapping.py), never here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend import db
from backend.fsutil import ensure_private_dir

SENDING, SEND_FAILED, SENT, PROCESSING, READY, DOWNLOADED, ARCHIVED = (
    "sending",
    "send failed",
    "sent",
    "processing",
    "results ready",
    "downloaded",
    "archived",
)
STATES: tuple[str, ...] = (SENDING, SEND_FAILED, SENT, PROCESSING, READY, DOWNLOADED, ARCHIVED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    site          TEXT NOT NULL,
    case_id       TEXT NOT NULL,
    layout        TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    source        TEXT,
    remote_path   TEXT,
    sha256        TEXT,
    size          INTEGER,
    sent_at       TEXT,
    ready_at      TEXT,
    downloaded_at TEXT,
    archived_at   TEXT,
    archive_path  TEXT,
    result_path   TEXT,
    local_path    TEXT,
    report_path   TEXT,
    result_files  TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (site, case_id)
);
CREATE TABLE IF NOT EXISTS observations (
    site      TEXT NOT NULL,
    case_id   TEXT NOT NULL,
    signature TEXT NOT NULL,
    seen_at   TEXT NOT NULL,
    PRIMARY KEY (site, case_id)
);
"""


def _v1_tables(con: sqlite3.Connection) -> None:
    """Version 1: the tables of the first case store."""
    db.run_script(con, _SCHEMA)


def _v2_journaled_sends(con: sqlite3.Connection) -> None:
    """Version 2: journaled sends (backend/cases/sendjob.py) and de-identified copies. Stores
    from before schema versions have any subset of these columns (each release added some)."""
    db.add_missing_columns(con, "cases", (
        ("verified_by", "TEXT"),
        ("job_id", "INTEGER"),
        ("created_dirs", "TEXT"),
        ("note", "TEXT"),
        ("deidentified", "TEXT"),
    ))


SCHEMA = db.Schema("case store", (_v1_tables, _v2_journaled_sends))
"""The case store's migrations, oldest first (backend/db.py): append one per change."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_path() -> Path:
    from backend.paths import state_dir

    return state_dir() / "cases.sqlite"


@dataclass
class CaseRecord:
    site: str
    case_id: str
    state: str
    layout: str = ""
    source: str | None = None
    remote_path: str | None = None
    sha256: str | None = None
    size: int | None = None
    sent_at: str | None = None
    ready_at: str | None = None
    downloaded_at: str | None = None
    archived_at: str | None = None
    archive_path: str | None = None
    result_path: str | None = None
    local_path: str | None = None
    report_path: str | None = None
    result_files: str | None = None  # JSON list of {"path", "size", "sha256"}
    updated_at: str = ""
    verified_by: str | None = None  # how the upload was checked: a VERIFIED_BY key
    job_id: int | None = None  # the transfer job of the send
    created_dirs: str | None = None  # JSON list of remote folders the send created
    note: str | None = None  # why a send failed and what it left on the server
    deidentified: str | None = None  # sent de-identified: its mapping is in the vault

    def files(self) -> list[dict[str, Any]]:
        return json.loads(self.result_files) if self.result_files else []

    def dirs(self) -> list[str]:
        return json.loads(self.created_dirs) if self.created_dirs else []


_COLUMNS = [f.name for f in fields(CaseRecord)]


class CaseStore:
    """Read and update case rows. Every method is one short transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        ensure_private_dir(self.path.parent)
        new = not self.path.exists()
        with db.connection(self.path, SCHEMA.what) as con:
            db.open_schema(con, self.path, SCHEMA)
        if new:
            db.private_files(self.path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE) on its own connection."""
        with db.connection(self.path, SCHEMA.what) as con, \
                db.transaction(con, SCHEMA.what, self.path):
            yield con

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection for reads (WAL: never waits for a writer)."""
        return db.connection(self.path, SCHEMA.what)

    def get(self, site: str, case_id: str) -> CaseRecord | None:
        with self._read() as con:
            row = con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM cases WHERE site=? AND case_id=?",  # noqa: S608
                (site, case_id),
            ).fetchone()
        return CaseRecord(*row) if row else None

    def list(self, site: str) -> list[CaseRecord]:
        with self._read() as con:
            rows = con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM cases WHERE site=? ORDER BY case_id",  # noqa: S608
                (site,),
            ).fetchall()
        return [CaseRecord(*r) for r in rows]

    def upsert(self, site: str, case_id: str, **changes: Any) -> CaseRecord:
        """Create or update the row; unknown columns are a programming error."""
        bad = set(changes) - set(_COLUMNS)
        if bad:
            raise ValueError(f"unknown case fields: {sorted(bad)}")
        changes["updated_at"] = now()
        with self._db() as con:
            exists = con.execute(
                "SELECT 1 FROM cases WHERE site=? AND case_id=?", (site, case_id)
            ).fetchone()
            if exists:
                sets = ", ".join(f"{k}=?" for k in changes)
                con.execute(
                    f"UPDATE cases SET {sets} WHERE site=? AND case_id=?",  # noqa: S608
                    (*changes.values(), site, case_id),
                )
            else:
                changes.setdefault("state", PROCESSING)
                cols = ["site", "case_id", *changes]
                con.execute(
                    f"INSERT INTO cases ({', '.join(cols)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in cols)})",
                    (site, case_id, *changes.values()),
                )
        record = self.get(site, case_id)
        assert record is not None
        return record

    def delete(self, site: str, case_id: str) -> None:
        """Forget a case (a send abandoned before anything was uploaded)."""
        with self._db() as con:
            con.execute("DELETE FROM cases WHERE site=? AND case_id=?", (site, case_id))

    def previous_signature(self, site: str, case_id: str) -> str | None:
        with self._read() as con:
            row = con.execute(
                "SELECT signature FROM observations WHERE site=? AND case_id=?", (site, case_id)
            ).fetchone()
        return row[0] if row else None

    def observe(self, site: str, case_id: str, signature: str) -> None:
        with self._db() as con:
            con.execute(
                "INSERT INTO observations (site, case_id, signature, seen_at) VALUES (?,?,?,?) "
                "ON CONFLICT(site, case_id) DO UPDATE SET signature=excluded.signature, "
                "seen_at=excluded.seen_at",
                (site, case_id, signature, now()),
            )

    def forget_observation(self, site: str, case_id: str) -> None:
        with self._db() as con:
            con.execute("DELETE FROM observations WHERE site=? AND case_id=?", (site, case_id))
