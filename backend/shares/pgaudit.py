"""The share service's audit chain in PostgreSQL, shared by every instance.

Rows and hashes are exactly those of ``backend/audit.py`` (``hash = SHA-256(prev_hash +
canonical JSON of {id, ts, event, actor, fields})``, the first row chains from 64 zeros), so a
chain moved from the embedded log by ``ferry serve migrate`` keeps its hashes and verifies.
Appends from all instances are serialised by a transaction-level advisory lock: each reads the
last row, chains the new ones to it and moves the head in the same transaction.

The end of the chain (rows, last hash) is kept in ``audit_head`` with an HMAC under a key
derived from the share server key (``$FERRY_HOME/share-server.key``, never in the database),
so a deleted tail, a wiped table or a recomputed chain fails :meth:`PgAuditLog.verify`; an
append that finds the head and the table disagree first records ``audit.tamper_detected``, as
the embedded log does. Same reading API as ``AuditLog``: ``append``, ``append_many``,
``query``, ``last_id``, ``verify``.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from backend.audit import (
    GENESIS,
    POSTGRES_DIALECT,
    TAMPER_EVENT,
    AuditRecord,
    NotCanonical,
    VerifyResult,
    _fail,
    _now,
    canonical_json,
    parse_fields,
    prepare_rows,
    query_sql,
    record_from_row,
    row_hash,
)
from backend.shares.pgstore import PostgresMetadataStore, lock_key


class PgAuditLog:
    def __init__(self, store: PostgresMetadataStore, head_key: bytes) -> None:
        self.store = store
        self._key = head_key

    def _mac(self, rows: int, digest: str) -> str:
        return hmac.new(self._key, f"ferry audit head v1 {rows} {digest}".encode(),
                        "sha256").hexdigest()

    # -- writing --------------------------------------------------------------------------
    def append(self, event: str, **fields: Any) -> int:
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
        rows = prepare_rows(events)
        if not rows:
            return []
        return self.append_rows(rows)[-len(rows):]

    def append_rows(self, rows: list[tuple[str, str, str]],
                    keep: list[tuple[int, str, str, str, str, str, str]] | None = None
                    ) -> list[int]:
        """Chain ``rows`` (event, actor, canonical fields) after the last row. ``keep`` (used
        by the migration only) are complete rows (id, ts, event, actor, fields, prev, hash)
        copied as they are, before ``rows``; they must continue the chain exactly."""
        ids: list[int] = []
        with self.store.transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("audit"),))
            last = con.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            head = con.execute("SELECT rows, hash, mac FROM audit_head").fetchone()
            end_rows, end_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            first: list[tuple[str, str, str]] = []
            problem = self._head_problem(head, end_rows, end_hash)
            if problem:
                first.append((TAMPER_EVENT, "ferry",
                              canonical_json({"reason": problem, "table_rows": end_rows})))
            prev, next_id = end_hash, end_rows + 1
            for row_id, ts, event, actor, body, prev_hash, digest in keep or []:
                if row_id != next_id or prev_hash != prev or row_hash(
                        prev, row_id, ts, event, actor, body) != digest:
                    raise ValueError(f"audit row {row_id} does not continue the chain")
                con.execute("INSERT INTO audit(id, ts, event, actor, fields, prev_hash, hash)"
                            " VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (row_id, ts, event, actor, body, prev_hash, digest))
                prev, next_id = digest, next_id + 1
            for event, actor, body in [*first, *rows]:
                ts = _now()
                digest = row_hash(prev, next_id, ts, event, actor, body)
                con.execute("INSERT INTO audit(id, ts, event, actor, fields, prev_hash, hash)"
                            " VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (next_id, ts, event, actor, body, prev, digest))
                ids.append(next_id)
                prev, next_id = digest, next_id + 1
            con.execute(
                "INSERT INTO audit_head(one, rows, hash, mac) VALUES (1, %(r)s, %(h)s, %(m)s)"
                " ON CONFLICT (one) DO UPDATE SET rows = %(r)s, hash = %(h)s, mac = %(m)s",
                {"r": next_id - 1, "h": prev, "m": self._mac(next_id - 1, prev)},
            )
        return ids

    def _head_problem(self, head: tuple[Any, ...] | None, rows: int, digest: str) -> str:
        if head is None:
            return "" if rows == 0 else "the head was missing"
        if not hmac.compare_digest(str(head[2]), self._mac(int(head[0]), str(head[1]))):
            return "the head is not signed with the share server key"
        if int(head[0]) != rows or head[1] != digest:
            return f"the head records {head[0]} rows, the table had {rows} (or another last row)"
        return ""

    # -- reading --------------------------------------------------------------------------
    def query(self, event: str | None = None, since: int | str | datetime | None = None,
              limit: int | None = None, text: str | None = None) -> list[AuditRecord]:
        sql, args = query_sql(event, since, limit, text, POSTGRES_DIALECT)
        rows = self.store._exec(sql, args)
        if limit:
            rows.reverse()
        return [record_from_row(r) for r in rows]

    def last_id(self) -> int:
        rows = self.store._exec("SELECT max(id) FROM audit")
        return int(rows[0][0] or 0)

    def all_rows(self) -> list[tuple[Any, ...]]:
        return self.store._exec(
            "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit ORDER BY id")

    def verify(self, anchors: Any = None) -> VerifyResult:
        """Recompute the chain and compare its end with the signed head."""
        with self.store.transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("audit"),))
            rows = con.execute("SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit"
                               " ORDER BY id").fetchall()
            head = con.execute("SELECT rows, hash, mac FROM audit_head").fetchone()
        notes: list[str] = []
        n = len(rows)
        prev, expected = GENESIS, 1
        for row_id, ts, event, actor, fields, prev_hash, digest in rows:
            if row_id != expected:
                return _fail("deleted", n, expected,
                             f"row {expected} is missing (deleted from the middle)", notes)
            if prev_hash != prev:
                return _fail("modified", n, row_id,
                             f"row {row_id} does not chain to the row before it", notes)
            try:
                actual = row_hash(prev, row_id, ts, event, actor, fields)
                parse_fields(fields)
            except NotCanonical as exc:
                return _fail("not-canonical", n, row_id,
                             f"row {row_id}'s fields are refused: {exc}", notes)
            if actual != digest:
                return _fail("modified", n, row_id,
                             f"row {row_id} was modified (hash mismatch)", notes)
            if event == TAMPER_EVENT:
                why = parse_fields(fields).get("reason", "")
                return _fail("tamper-recorded", n, row_id,
                             f"Ferry found the log tampered with when it wrote row {row_id}:"
                             f" {why}", notes)
            prev, expected = digest, expected + 1
        last = int(rows[-1][0]) if rows else 0
        if head is None:
            if n == 0:
                return VerifyResult(True, 0, last_hash=GENESIS, notes=notes)
            return _fail("head-missing", n, None, "the audit head row is missing", notes)
        if not hmac.compare_digest(str(head[2]), self._mac(int(head[0]), str(head[1]))):
            return _fail("head-invalid", n, None,
                         "the audit head is not signed with the share server key", notes)
        want = int(head[0])
        if last == 0 and want:
            return _fail("wiped", n, 1, f"the table is empty but the head records {want} rows",
                         notes)
        if last < want:
            return _fail("truncated", n, last + 1,
                         f"rows {last + 1}..{want} are missing (the head records {want})", notes)
        if last > want:
            return _fail("appended", n, want + 1,
                         f"rows {want + 1}..{last} were added outside Ferry", notes)
        if head[1] != prev:
            return _fail("rewritten", n, last,
                         f"row {last} does not match the head: the chain was rewritten", notes)
        return VerifyResult(True, n, last_hash=prev, notes=notes)
