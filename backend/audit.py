"""Ferry's one audit log: append-only, hash-chained, in SQLite.

Every component writes here: the share service (created, edited, revoked, downloaded, failed
password, purged) and the transfer engine (every finished file: local user, site, direction,
paths, size, SHA-256, result). Each row stores ``hash = SHA-256(prev_hash + canonical JSON of
the row)`` where the row is ``{id, ts, event, actor, fields}``; the first row chains from 64
zeros. :meth:`AuditLog.verify` recomputes the chain, so an edited row, a deleted row (ids must
be contiguous) or a truncated tail (checked against SQLite's own id counter and a head anchor
file next to the database) is reported with the first bad row id.

Usage::

    log = AuditLog()                       # $FERRY_HOME/state/audit.sqlite
    log.append("transfer.done", site="pacs", direction="upload", size=123, sha256="ab..")
    log.query(event="share.*", since=10)   # rows with id > 10 whose event starts with share.
    log.verify().ok

Never put a secret (password, token, key) in ``fields``.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from backend.errors import ConfigError
from backend.fsutil import atomic_write, ensure_private_dir

GENESIS = "0" * 64
_BUSY_TIMEOUT_MS = 15000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        TEXT NOT NULL,
    event     TEXT NOT NULL,
    actor     TEXT NOT NULL,
    fields    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_event ON audit(event);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
"""


def default_path() -> Path:
    from backend.paths import state_dir

    return state_dir() / "audit.sqlite"


def canonical_json(obj: Any) -> str:
    """The one serialisation the chain hashes: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, row_id: int, ts: str, event: str, actor: str, fields: str) -> str:
    body = canonical_json(
        {"id": row_id, "ts": ts, "event": event, "actor": actor, "fields": json.loads(fields)}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    id: int
    ts: str
    event: str
    actor: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "event": self.event,
            "actor": self.actor,
            "fields": self.fields,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int = 0
    first_bad_id: int | None = None
    reason: str = ""
    details: list[str] = field(default_factory=list)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class AuditLog:
    """The hash-chained log. Safe to use from several processes at once (SQLite WAL + locks)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        ensure_private_dir(self.path.parent)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._init_db()

    # -- connection -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the audit log {self.path}: {exc}") from None
        try:
            con.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            yield con
        finally:
            con.close()

    def _init_db(self) -> None:
        new = not self.path.exists()
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
        if new:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    self.path.with_name(self.path.name + suffix).chmod(0o600)

    # -- writing --------------------------------------------------------------------------
    def append(self, event: str, **fields: Any) -> int:
        """Append one event; returns its row id. ``actor`` defaults to the local OS user."""
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Append several events in one transaction (one commit, one head write: what a busy
        writer such as the transfer engine needs); returns their row ids in order."""
        rows = []
        for event, fields in events:
            if not event:
                raise ValueError("audit event name must not be empty")
            fields = dict(fields)
            actor = str(fields.pop("actor", None) or _local_user())
            rows.append((event, actor, canonical_json(fields)))
        if not rows:
            return []
        ids: list[int] = []
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                last = con.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
                seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
                next_id = max(last[0] if last else 0, seq[0] if seq else 0) + 1
                prev = last[1] if last else GENESIS
                for event, actor, body in rows:
                    ts = _now()
                    digest = row_hash(prev, next_id, ts, event, actor, body)
                    con.execute(
                        "INSERT INTO audit(id, ts, event, actor, fields, prev_hash, hash)"
                        " VALUES (?,?,?,?,?,?,?)",
                        (next_id, ts, event, actor, body, prev, digest),
                    )
                    ids.append(next_id)
                    prev, next_id = digest, next_id + 1
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        self._write_head(ids[-1], prev)
        return ids

    def _write_head(self, row_id: int, digest: str) -> None:
        current = self._read_head()
        if current is not None and current[0] >= row_id:
            return
        with contextlib.suppress(OSError):
            atomic_write(self.head_path, f"{row_id} {digest}\n")

    def _read_head(self) -> tuple[int, str] | None:
        try:
            text = self.head_path.read_text().split()
            return int(text[0]), text[1]
        except (OSError, ValueError, IndexError):
            return None

    # -- reading --------------------------------------------------------------------------
    def query(
        self,
        event: str | None = None,
        since: int | str | datetime | None = None,
        limit: int | None = None,
        text: str | None = None,
    ) -> list[AuditRecord]:
        """Rows in id order. ``event`` may end in ``*`` (prefix match); ``since`` is a row id
        (rows after it) or a time (rows at or after it); ``limit`` keeps the newest N;
        ``text`` is a case-insensitive substring of the event or its fields."""
        where: list[str] = []
        args: list[Any] = []
        if event:
            if event.endswith("*"):
                where.append("event LIKE ? ESCAPE '\\'")
                prefix = event[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args.append(prefix + "%")
            else:
                where.append("event = ?")
                args.append(event)
        if isinstance(since, int) and not isinstance(since, bool):
            where.append("id > ?")
            args.append(since)
        elif isinstance(since, datetime):
            stamp = since if since.tzinfo else since.replace(tzinfo=UTC)
            where.append("ts >= ?")
            args.append(stamp.astimezone(UTC).isoformat(timespec="microseconds"))
        elif isinstance(since, str) and since:
            where.append("ts >= ?")
            args.append(since)
        if text:
            where.append("(instr(lower(event), ?) > 0 OR instr(lower(fields), ?) > 0)")
            args += [text.lower(), text.lower()]
        sql = "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if limit else " ORDER BY id"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        if limit:
            rows.reverse()
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: tuple[Any, ...]) -> AuditRecord:
        try:
            fields = json.loads(row[4])
        except ValueError:
            fields = {"_unparseable": row[4]}
        return AuditRecord(row[0], row[1], row[2], row[3], fields, row[5], row[6])

    def last_id(self) -> int:
        with self._connect() as con:
            row = con.execute("SELECT max(id) FROM audit").fetchone()
        return int(row[0] or 0)

    # -- verification ---------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Recompute the chain. Any edited, inserted, deleted or truncated row makes it fail."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit ORDER BY id"
            ).fetchall()
            seq_row = con.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        prev = GENESIS
        expected_id = 1
        for row_id, ts, event, actor, fields, prev_hash, digest in rows:
            if row_id != expected_id:
                return VerifyResult(
                    False, len(rows), expected_id, f"row {expected_id} is missing (deleted)"
                )
            if prev_hash != prev:
                return VerifyResult(
                    False, len(rows), row_id, f"row {row_id} does not chain to the row before it"
                )
            try:
                actual = row_hash(prev, row_id, ts, event, actor, fields)
            except (ValueError, TypeError):
                return VerifyResult(False, len(rows), row_id, f"row {row_id} is not valid JSON")
            if actual != digest:
                return VerifyResult(
                    False, len(rows), row_id, f"row {row_id} was modified (hash mismatch)"
                )
            prev = digest
            expected_id += 1
        last = rows[-1][0] if rows else 0
        seq = seq_row[0] if seq_row else 0
        if seq > last:
            return VerifyResult(
                False, len(rows), last + 1, f"rows {last + 1}..{seq} are missing (tail deleted)"
            )
        head = self._read_head()
        if head is not None:
            head_id, head_hash = head
            if head_id > last:
                return VerifyResult(
                    False, len(rows), last + 1, f"rows after {last} are missing (tail deleted)"
                )
            if rows and rows[head_id - 1][6] != head_hash:
                return VerifyResult(
                    False, len(rows), head_id, f"row {head_id} differs from the recorded head"
                )
        return VerifyResult(True, len(rows))

    # -- export ---------------------------------------------------------------------------
    def export_csv(self, fh: IO[str]) -> int:
        """Write every row as CSV: fixed columns, then one column per field name. Returns rows."""
        records = self.query()
        keys = sorted({k for r in records for k in r.fields})
        writer = csv.writer(fh)
        writer.writerow(["id", "time", "event", "actor", *keys, "prev_hash", "hash"])
        for r in records:
            values = []
            for k in keys:
                v = r.fields.get(k, "")
                values.append(_csv_cell(canonical_json(v) if isinstance(v, dict | list) else v))
            row = [r.id, r.ts, _csv_cell(r.event), _csv_cell(r.actor), *values]
            writer.writerow([*row, r.prev_hash, r.hash])
        return len(records)


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in user data (file names are user data)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
