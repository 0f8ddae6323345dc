"""Ferry's one audit log: append-only, hash-chained, in SQLite, its end held by a keyed head.

Every component writes here: the share service (created, edited, revoked, downloaded, failed
password, purged) and the transfer engine (every finished file: local user, site, direction,
paths, size, SHA-256, result). Each row stores ``hash = SHA-256(prev_hash + canonical JSON of
the row)`` where the row is ``{id, ts, event, actor, fields}``; the first row chains from 64
zeros. ``fields`` is stored as canonical JSON (sorted keys, no spaces) and :meth:`verify`
refuses any other text, duplicate keys included, so what a reader sees is what was hashed.

The end of the chain (row count, last hash) is recorded in a head signed with HMAC-SHA256
under a key kept apart from the database (``backend/audit_head.py``); :meth:`AuditLog.verify`
recomputes the chain and compares its end with the head, so an edited row, a deleted row, a
truncated tail, a wiped table, rows added outside Ferry and a recomputed chain each fail with
a one-line reason and a ``kind``. :meth:`AuditLog.anchor_line` gives a signed head line to keep
elsewhere; ``verify(anchors=FILE)`` proves every anchored state is still a prefix of the
chain. What this proves and against whom: docs/security.md, "Audit log".

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from backend import db
from backend.audit_head import (
    ChainState,
    HeadInvalid,
    KeyedHead,
    anchor_signed_by,
    default_key_dir,
    key_id,
    parse_anchors,
)
from backend.errors import UsageError
from backend.fsutil import ensure_private_dir

GENESIS = "0" * 64
TAMPER_EVENT = "audit.tamper_detected"
"""Written by an append that finds the table and the keyed head disagree; verify then fails
for good (the row is chained and covered by the head, so removing it is caught as well)."""
UPGRADE_EVENT = "audit.head_keyed"
"""Written once when a log from before keyed heads is given its key (docs/security.md)."""

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


def _v1_tables(con: sqlite3.Connection) -> None:
    """Version 1: the table as it was when schema versions began (a version-0 log already
    has it). A migration never adds, edits or removes rows: the chain and its keyed head
    (backend/audit_head.py) cover rows only, so they stay valid across upgrades."""
    db.run_script(con, _SCHEMA)


SCHEMA = db.Schema("audit log", (_v1_tables,))
"""The audit log's migrations, oldest first (backend/db.py)."""


def default_path() -> Path:
    from backend.paths import state_dir

    return state_dir() / "audit.sqlite"


def canonical_json(obj: Any) -> str:
    """The one serialisation the chain hashes: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class NotCanonical(ValueError):
    """A row's stored fields are not the canonical JSON of an object."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise NotCanonical(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except NotCanonical:
        raise
    except (ValueError, TypeError, RecursionError):
        raise NotCanonical("not valid JSON") from None
    if not isinstance(value, dict):
        raise NotCanonical("not a JSON object")
    return value


def parse_fields(text: str) -> dict[str, Any]:
    """Parse stored fields strictly: a JSON object, no duplicate keys, stored canonically
    (re-serialising gives the same text). Raises :class:`NotCanonical` otherwise."""
    value = _parse_object(text)
    if canonical_json(value) != text:
        raise NotCanonical("not in canonical form (sorted keys, no spaces)")
    return value


def row_hash(prev_hash: str, row_id: int, ts: str, event: str, actor: str, fields: str) -> str:
    body = canonical_json(
        {"id": row_id, "ts": ts, "event": event, "actor": actor, "fields": _parse_object(fields)}
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


VERIFY_KINDS = (
    "ok",
    "deleted",  # a row id is missing in the middle
    "modified",  # a row's hash does not match its content, or it does not chain
    "not-canonical",  # fields are not canonical JSON (duplicate keys, other spacing)
    "truncated",  # rows are missing at the end (head or SQLite's counter records more)
    "wiped",  # the table is empty but the log had rows
    "appended",  # rows after the head were added outside Ferry
    "rewritten",  # same row count as the head, different last hash: chain recomputed
    "head-missing",  # the log has a key (or rows) but no head
    "head-invalid",  # the head is not signed with the key
    "tamper-recorded",  # an append found the log tampered with and recorded it
    "anchor",  # an anchored state is not a prefix of the chain
)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int = 0
    first_bad_id: int | None = None
    reason: str = ""
    details: list[str] = field(default_factory=list)
    kind: str = "ok"
    """One of :data:`VERIFY_KINDS`."""
    last_hash: str = GENESIS
    anchors_checked: int = 0
    notes: list[str] = field(default_factory=list)
    """Things that are not failures but must be said (an upgrade, an interrupted append)."""


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def prepare_rows(events: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """The ``(event, actor, canonical fields)`` rows for ``events`` (``actor`` taken out of the
    fields, the local OS user when absent), as both chains store them: the embedded log's
    :meth:`AuditLog.append_many` and the share service's (backend/shares/pgaudit.py)."""
    rows = []
    for event, fields in events:
        if not event:
            raise ValueError("audit event name must not be empty")
        fields = dict(fields)
        actor = str(fields.pop("actor", None) or _local_user())
        rows.append((event, actor, canonical_json(fields)))
    return rows


def _fail(kind: str, rows: int, bad: int | None, reason: str, notes: list[str]) -> VerifyResult:
    return VerifyResult(False, rows, bad, reason, kind=kind, notes=notes)


class AuditLog:
    """The hash-chained log. Safe to use from several processes at once (SQLite WAL + locks).

    ``key_dir`` holds the head key and the signed head; by default ``$FERRY_HOME/audit-key``
    (or ``$FERRY_AUDIT_KEY_DIR``) for the default database, ``<name>-key`` beside an
    explicitly given database.
    """

    def __init__(self, path: Path | None = None, key_dir: Path | None = None) -> None:
        if key_dir is None:
            key_dir = default_key_dir() if path is None else None
        self.path = Path(path) if path is not None else default_path()
        ensure_private_dir(self.path.parent)
        if key_dir is None:
            key_dir = self.path.with_name(self.path.stem + "-key")
        self.keyed = KeyedHead(Path(key_dir))
        self.head_path = self.path.with_name(self.path.name + ".head")
        """The unkeyed head of logs from before keyed heads (read once, for the upgrade)."""
        self._init_db()

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return db.connection(self.path, SCHEMA.what)

    def _init_db(self) -> None:
        new = not self.path.exists()
        with self._connect() as con:
            db.open_schema(con, self.path, SCHEMA)
        if new:
            db.private_files(self.path)

    @staticmethod
    def _table_end(con: sqlite3.Connection) -> tuple[ChainState, int]:
        last = con.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        state = ChainState(int(last[0]), str(last[1])) if last else ChainState(0, GENESIS)
        return state, int(seq[0]) if seq else 0

    # -- writing --------------------------------------------------------------------------
    def append(self, event: str, **fields: Any) -> int:
        """Append one event; returns its row id. ``actor`` defaults to the local OS user."""
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Append several events in one transaction (one commit, one head write: what a busy
        writer such as the transfer engine needs); returns their row ids in order."""
        rows = prepare_rows(events)
        if not rows:
            return []
        return self._write_rows(rows)[-len(rows):]

    def _prepare(
        self, con: sqlite3.Connection, end: ChainState, seq: int
    ) -> tuple[bytes, list[tuple[str, str, str]], bool]:
        """Inside the write transaction: the key (created for a new or pre-key log) and the
        rows Ferry must add first (an upgrade note, or a record that the table and the head
        disagree, so an append never hides a truncation by signing over it)."""
        key = self.keyed.load_key()
        actor = "ferry"
        if key is None:
            legacy = self._read_legacy_head()
            key = self.keyed.create_key()
            if end.rows == 0 and seq == 0 and legacy is None:
                return key, [], True
            problem = self._legacy_problem(con, end, seq, legacy)
            if problem:
                note = {"reason": problem, "table_rows": end.rows}
                return key, [(TAMPER_EVENT, actor, canonical_json(note))], True
            note = {"rows": end.rows, "unkeyed_head": legacy is not None}
            return key, [(UPGRADE_EVENT, actor, canonical_json(note))], True
        try:
            head = self.keyed.read(key)
        except HeadInvalid as exc:
            problem = f"the keyed head is invalid: {exc}"
        else:
            if head is None:
                problem = "the keyed head was missing"
            elif not head.accepts(end):
                problem = (f"the keyed head records {head.cur.rows} rows, the table had {end.rows}"
                           " (or a different last row)")
            else:
                return key, [], False
        note = {"reason": problem, "table_rows": end.rows}
        return key, [(TAMPER_EVENT, actor, canonical_json(note))], False

    def _write_rows(
        self, rows: list[tuple[str, str, str]], upgrade_only: bool = False
    ) -> list[int]:
        ids: list[int] = []
        begun = created = False
        saved: bytes | None = None
        with self._connect() as con:
            db.begin(con, SCHEMA.what, self.path)
            try:
                end, seq = self._table_end(con)
                key, first, created = self._prepare(con, end, seq)
                if upgrade_only and not first:
                    if created:
                        self.keyed.reset(key, end)
                    con.execute("COMMIT")
                    return []
                next_id = max(end.rows, seq) + 1
                prev = end.hash
                for event, actor, body in [*first, *rows]:
                    ts = _now()
                    digest = row_hash(prev, next_id, ts, event, actor, body)
                    con.execute(
                        "INSERT INTO audit(id, ts, event, actor, fields, prev_hash, hash)"
                        " VALUES (?,?,?,?,?,?,?)",
                        (next_id, ts, event, actor, body, prev, digest),
                    )
                    ids.append(next_id)
                    prev, next_id = digest, next_id + 1
                new_end = ChainState(ids[-1], prev)
                saved = self.keyed.snapshot()
                self.keyed.begin(key, end, new_end)
                begun = True
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                if begun:
                    self.keyed.restore(saved)
                if created:  # undo the key too, so the next append redoes the upgrade checks
                    self.keyed.key_path.unlink(missing_ok=True)
                raise
        self.keyed.finish(key, new_end)
        if created:
            with contextlib.suppress(OSError):
                self.head_path.unlink()
        return ids

    def _read_legacy_head(self) -> tuple[int, str] | None:
        try:
            text = self.head_path.read_text().split()
            return int(text[0]), text[1]
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _legacy_problem(
        con: sqlite3.Connection, end: ChainState, seq: int, legacy: tuple[int, str] | None
    ) -> str:
        """Why an unkeyed log cannot be trusted as it stands ("" if it can be upgraded)."""
        if legacy is None:
            return "the log has rows but no head (its tail may have been deleted)"
        if seq > end.rows or legacy[0] > end.rows:
            return f"rows after {end.rows} are missing (tail deleted)"
        row = con.execute("SELECT hash FROM audit WHERE id=?", (legacy[0],)).fetchone()
        if row is None or row[0] != legacy[1]:
            return f"row {legacy[0]} differs from the recorded head"
        return ""

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
        sql, args = query_sql(event, since, limit, text, SQLITE_DIALECT)
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        if limit:
            rows.reverse()
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: tuple[Any, ...]) -> AuditRecord:
        return record_from_row(row)

    def last_id(self) -> int:
        with self._connect() as con:
            row = con.execute("SELECT max(id) FROM audit").fetchone()
        return int(row[0] or 0)

    # -- verification ---------------------------------------------------------------------
    def upgrade(self) -> None:
        """Give a new or pre-key log its key and keyed head (noted by an audit row when the
        log already had rows). Nothing happens to a log that has a key."""
        if self.keyed.load_key() is None:
            self._write_rows([], upgrade_only=True)

    def verify(self, anchors: Path | None = None) -> VerifyResult:
        """Recompute the chain and compare its end with the keyed head (and with each anchor
        in ``anchors``). Any edited, inserted, deleted or truncated row makes it fail."""
        had_key = self.keyed.load_key() is not None
        self.upgrade()
        anchor_text = None
        if anchors is not None:
            try:
                anchor_text = Path(anchors).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UsageError(
                    f"cannot read the anchor file {anchors}: {exc.strerror}",
                    hint="pass the file 'ferry audit anchor --to' appends to",
                ) from None
        with self._connect() as con:
            try:  # no append may commit between reading the rows and reading the head
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # a read-only copy: nobody appends to it
                con.execute("BEGIN")
            try:
                rows = con.execute(
                    "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit ORDER BY id"
                ).fetchall()
                _end, seq = self._table_end(con)
                key = self.keyed.load_key()
                try:
                    head = self.keyed.read(key) if key is not None else None
                    head_error = ""
                except HeadInvalid as exc:
                    head, head_error = None, str(exc)
            finally:
                con.execute("ROLLBACK")
        notes: list[str] = []
        n = len(rows)
        prev = GENESIS
        expected_id = 1
        for row_id, ts, event, actor, fields, prev_hash, digest in rows:
            if row_id != expected_id:
                return _fail("deleted", n, expected_id,
                             f"row {expected_id} is missing (deleted from the middle)", notes)
            if prev_hash != prev:
                return _fail("modified", n, row_id,
                             f"row {row_id} does not chain to the row before it", notes)
            try:
                actual = row_hash(prev, row_id, ts, event, actor, fields)
            except NotCanonical as exc:
                return _fail("not-canonical", n, row_id,
                             f"row {row_id}'s fields are refused: {exc}", notes)
            if actual != digest:
                return _fail("modified", n, row_id,
                             f"row {row_id} was modified (hash mismatch)", notes)
            try:
                parse_fields(fields)
            except NotCanonical as exc:
                return _fail("not-canonical", n, row_id,
                             f"row {row_id}'s fields are refused: {exc}", notes)
            if event == TAMPER_EVENT:
                why = parse_fields(fields).get("reason", "")
                return _fail("tamper-recorded", n, row_id,
                             f"Ferry found the log tampered with when it wrote row {row_id}: {why}",
                             notes)
            if event == UPGRADE_EVENT:
                notes.append(f"row {row_id}: the head was upgraded to a keyed head"
                             f" ({parse_fields(fields).get('rows')} rows before it were"
                             " covered by the unkeyed head only)")
            prev = digest
            expected_id += 1
        last = rows[-1][0] if rows else 0
        end = ChainState(last, prev)
        if seq > last:
            return _fail("wiped" if last == 0 else "truncated", n, last + 1,
                         f"rows {last + 1}..{seq} are missing (SQLite's counter records {seq})",
                         notes)
        if key is None:  # upgrade() refused: cannot happen unless the key folder vanished
            return _fail("head-missing", n, None, "the audit key is missing", notes)
        if head_error:
            return _fail("head-invalid", n, None,
                         f"the keyed head {self.keyed.head_path} is invalid: {head_error}"
                         " (edited or forged)", notes)
        if head is None:
            return _fail("head-missing", n, None,
                         f"the keyed head {self.keyed.head_path} is missing: the end of the log"
                         " cannot be proven (rows may have been deleted)", notes)
        if not head.accepts(end):
            want = head.cur.rows
            if last == 0:
                return _fail("wiped", n, 1,
                             f"the table is empty but the keyed head records {want} rows"
                             " (table wiped)", notes)
            if last < want:
                return _fail("truncated", n, last + 1,
                             f"rows are missing: the keyed head records {want} rows, the table"
                             f" has {last} (rows {last + 1}..{want} cut off the end, or rows"
                             " deleted and the chain recomputed)", notes)
            if last > want:
                return _fail("appended", n, want + 1,
                             f"rows {want + 1}..{last} were added outside Ferry (the keyed head"
                             f" records {want} rows)", notes)
            return _fail("rewritten", n, last,
                         f"row {last} does not match the keyed head: the chain was rewritten",
                         notes)
        if head.pending and end == head.prev:
            notes.append(f"the last append (rows {head.prev.rows + 1}..{head.cur.rows}) was"
                         " interrupted before it was committed")
        if not had_key and not any("upgraded" in x for x in notes):
            notes.append("a key and keyed head were created for this log")
        checked = 0
        if anchor_text is not None:
            failure = self._check_anchors(anchor_text, Path(anchors or ""), rows, key, notes)
            if failure is not None:
                return failure
            checked = len(parse_anchors(anchor_text)[0])
        return VerifyResult(True, n, last_hash=end.hash, anchors_checked=checked, notes=notes)

    @staticmethod
    def _check_anchors(
        text: str, path: Path, rows: list[tuple[Any, ...]], key: bytes, notes: list[str]
    ) -> VerifyResult | None:
        anchors, bad = parse_anchors(text)
        n = len(rows)
        if bad:
            return _fail("anchor", n, None,
                         f"line {bad[0]} of {path} is not a Ferry audit anchor", notes)
        if not anchors:
            notes.append(f"{path} holds no anchors: nothing was checked against it")
        kid = key_id(key)
        for a in anchors:
            where = f"anchor line {a.line_no} of {path} ({a.time})"
            if a.key_id != kid:
                return _fail("anchor", n, None,
                             f"{where} was made with another audit key ({a.key_id}, this log's"
                             f" is {kid}): the key was replaced or it is another log's", notes)
            if not anchor_signed_by(key, a):
                return _fail("anchor", n, None, f"{where} is not signed by this log's key",
                             notes)
            if a.state.rows > n:
                return _fail("anchor", n, n + 1,
                             f"{where} records {a.state.rows} rows, the table has {n}:"
                             " the log was truncated below an anchor", notes)
            if a.state.rows and rows[a.state.rows - 1][6] != a.state.hash:
                return _fail("anchor", n, a.state.rows,
                             f"row {a.state.rows} differs from {where}: the log was rewritten"
                             " below an anchor", notes)
        return None

    def anchor_line(self) -> tuple[VerifyResult, str]:
        """Verify, then the signed line recording the verified end, for an anchor file."""
        result = self.verify()
        if not result.ok:
            return result, ""
        key = self.keyed.load_key()
        assert key is not None
        state = ChainState(result.rows, result.last_hash)
        return result, self.keyed.anchor_line(key, state, _now())

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


@dataclass(frozen=True)
class SqlDialect:
    """What differs between the SQLite log and the PostgreSQL one (backend/shares/pgaudit.py)
    in :func:`query_sql`: the placeholder, the LIKE escape clause, the substring function."""

    placeholder: str
    like_escape: str
    contains: str  # a function (haystack, needle) -> position > 0 when found


SQLITE_DIALECT = SqlDialect("?", " ESCAPE '\\'", "instr")
POSTGRES_DIALECT = SqlDialect("%s", "", "strpos")  # PostgreSQL's LIKE escapes with \ already


def query_sql(event: str | None, since: int | str | datetime | None, limit: int | None,
              text: str | None, dialect: SqlDialect) -> tuple[str, list[Any]]:
    """The SELECT behind ``query()`` of either audit log (see :meth:`AuditLog.query`)."""
    ph = dialect.placeholder
    where: list[str] = []
    args: list[Any] = []
    if event:
        if event.endswith("*"):
            where.append(f"event LIKE {ph}{dialect.like_escape}")
            prefix = event[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(prefix + "%")
        else:
            where.append(f"event = {ph}")
            args.append(event)
    if isinstance(since, int) and not isinstance(since, bool):
        where.append(f"id > {ph}")
        args.append(since)
    elif isinstance(since, datetime):
        stamp = since if since.tzinfo else since.replace(tzinfo=UTC)
        where.append(f"ts >= {ph}")
        args.append(stamp.astimezone(UTC).isoformat(timespec="microseconds"))
    elif isinstance(since, str) and since:
        where.append(f"ts >= {ph}")
        args.append(since)
    if text:
        where.append(f"({dialect.contains}(lower(event), {ph}) > 0 OR "
                     f"{dialect.contains}(lower(fields), {ph}) > 0)")
        args += [text.lower(), text.lower()]
    sql = "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC" if limit else " ORDER BY id"
    if limit:
        sql += f" LIMIT {ph}"
        args.append(int(limit))
    return sql, args


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    """An audit row as a record; a row whose fields are not canonical JSON is shown as
    ``_unparseable`` (never a value the hash does not vouch for as if it did)."""
    try:
        fields = parse_fields(row[4])
    except NotCanonical:
        fields = {"_unparseable": row[4]}
    return AuditRecord(int(row[0]), row[1], row[2], row[3], fields, row[5], row[6])
