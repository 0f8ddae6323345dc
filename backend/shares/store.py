"""Share metadata storage: the :class:`MetadataStore` interface and its SQLite implementation.

The store holds shares, recipients and each share's WRAPPED key (never the blob). Another
backend (PostgreSQL) implements the same methods. The SQLite store runs in WAL mode with
``secure_delete`` on, and checkpoints the WAL after a key is destroyed so the wrapped key's
bytes do not linger in the database files.

Accounting that must hold under concurrency is one conditional statement per operation (on
PostgreSQL the same ``UPDATE ... WHERE ... RETURNING`` takes the row lock; ``MAX(a, b)`` is
``GREATEST``), see docs/sharing.md "Exact limits":

* :meth:`acquire_download` takes a download slot (``in_flight + downloads < max``) and reserves
  the bytes the request may send (``bytes_served + reserved + n <= cap``) before the first byte,
  under a lease (``lease_until``) that a streaming process renews (:meth:`renew_leases`); slots
  and reservations of a lease that ran out (a process that died) no longer count;
* :meth:`release_download` converts the slot into a download when every byte of the file was
  delivered (``delivered_prefix``: bytes 0..n-1 sent to this link since its last complete
  download) and frees the reservation;
* :meth:`reserve_password_check` counts a password attempt BEFORE the hash is checked, and only
  when no check is running for that link (``check_until``) and it is not locked;
  :meth:`finish_password_check` records the outcome. Failures are forgotten at
  ``failures_reset_at`` (a quiet period after the last lock).
"""

# ruff: noqa: S608  (SQL is built only from the column-name constants below, never from input)
from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from backend import db
from backend.fsutil import ensure_private_dir
from backend.shares.model import Recipient, Share

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    max_downloads INTEGER NOT NULL,
    password_hash TEXT,
    blob_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    notify INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT,
    purged_at TEXT,
    purge_reason TEXT,
    wrapped_key BLOB
);
CREATE TABLE IF NOT EXISTS recipients (
    id TEXT PRIMARY KEY,
    share_id TEXT NOT NULL REFERENCES shares(id),
    email TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    downloads INTEGER NOT NULL DEFAULT 0,
    bytes_served INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    last_download_at TEXT
);
CREATE INDEX IF NOT EXISTS recipients_share ON recipients(share_id);
"""



def _v1_tables(con: sqlite3.Connection) -> None:
    """Version 1: the tables of the first share store."""
    db.run_script(con, _SCHEMA)


def _v2_accounting(con: sqlite3.Connection) -> None:
    """Version 2: broken shares and exact accounting (leases, reservations, password checks);
    stores from before schema versions have any subset of these columns. Version 2 matches
    version 1 of the PostgreSQL store (backend/shares/pgstore.py)."""
    db.add_missing_columns(con, "shares", (("broken_at", "TEXT"), ("broken_reason", "TEXT")))
    db.add_missing_columns(con, "recipients", (
        ("in_flight", "INTEGER NOT NULL DEFAULT 0"),
        ("reserved_bytes", "INTEGER NOT NULL DEFAULT 0"),
        ("lease_until", "TEXT"),
        ("delivered_prefix", "INTEGER NOT NULL DEFAULT 0"),
        ("last_counted", "INTEGER NOT NULL DEFAULT 0"),
        ("check_until", "TEXT"),
        ("failures_reset_at", "TEXT"),
    ))


SCHEMA = db.Schema("share store", (_v1_tables, _v2_accounting))
"""The SQLite share store's migrations, oldest first (backend/db.py; the PostgreSQL store
has its own list and ``schema_version`` table): append one per schema change."""

# a slot or reservation counts only while its lease runs
_LIVE = "(lease_until IS NOT NULL AND lease_until > :now)"


class MetadataStore(Protocol):
    def add_share(self, share: Share, wrapped_key: bytes) -> None: ...
    def get_share(self, share_id: str) -> Share | None: ...
    def list_shares(self) -> list[Share]: ...
    def find_by_token_hash(self, token_hash: str) -> tuple[Share, Recipient] | None: ...
    def add_recipient(self, recipient: Recipient) -> None: ...
    def update_share(self, share_id: str, **values: Any) -> None: ...
    def update_recipient(self, recipient_id: str, **values: Any) -> None: ...
    def add_download(self, recipient_id: str, completed: bool, nbytes: int) -> None: ...
    def wrapped_key(self, share_id: str) -> bytes | None: ...
    def destroy_key(self, share_id: str) -> None: ...
    def acquire_download(
        self, recipient_id: str, *, now: datetime, lease_until: datetime, max_downloads: int,
        slot: bool, nbytes: int, bytes_cap: int,
    ) -> bool: ...
    def renew_leases(self, recipient_ids: list[str], now: datetime,
                     lease_until: datetime) -> None: ...
    def release_download(
        self, recipient_id: str, *, now: datetime, slot: bool, reserved: int, start: int,
        sent: int, size: int, max_downloads: int,
    ) -> bool: ...
    def reserve_password_check(
        self, recipient_id: str, *, now: datetime, check_until: datetime,
        reset_at: datetime,
    ) -> int | None: ...
    def finish_password_check(
        self, recipient_id: str, *, ok: bool, locked_until: datetime | None,
        reset_at: datetime | None,
    ) -> None: ...
    def mark_broken(self, share_id: str, now: datetime, reason: str) -> bool: ...
    def inactive_shares(self, share_ids: list[str], now: datetime) -> set[str]: ...


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _dt_required(value: str) -> datetime:
    """A NOT NULL timestamp column."""
    return datetime.fromisoformat(value)


_SHARE_COLS = (
    "id, name, size, sha256, created_at, expires_at, max_downloads, password_hash, blob_id,"
    " sender, message, notify, revoked_at, purged_at, purge_reason, broken_at, broken_reason"
)
_RECIPIENT_COLS = (
    "id, share_id, email, token_hash, downloads, bytes_served, failed_attempts, locked_until,"
    " last_download_at"
)
_DATETIME_FIELDS = {"created_at", "expires_at", "revoked_at", "purged_at", "locked_until",
                    "last_download_at", "broken_at"}


class SqliteMetadataStore:
    """The embedded default: one SQLite file (WAL) under ``state_dir()``."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from backend.paths import state_dir

            path = state_dir() / "shares.sqlite"
        self.path = Path(path)
        ensure_private_dir(self.path.parent)
        self._lock = threading.Lock()
        self._con = db.connect(self.path, SCHEMA.what, check_same_thread=False,
                               secure_delete=True)
        db.open_schema(self._con, self.path, SCHEMA)
        db.private_files(self.path)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, db.transaction(self._con, SCHEMA.what, self.path) as con:
            yield con

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, args).fetchall()

    @staticmethod
    def _share(row: tuple[Any, ...]) -> Share:
        return Share(
            id=row[0], name=row[1], size=row[2], sha256=row[3],
            created_at=_dt_required(row[4]),
            expires_at=_dt_required(row[5]), max_downloads=row[6], password_hash=row[7],
            blob_id=row[8],
            sender=row[9], message=row[10], notify=bool(row[11]), revoked_at=_dt(row[12]),
            purged_at=_dt(row[13]), purge_reason=row[14], broken_at=_dt(row[15]),
            broken_reason=row[16],
        )

    @staticmethod
    def _recipient(row: tuple[Any, ...]) -> Recipient:
        return Recipient(
            id=row[0], share_id=row[1], email=row[2], token_hash=row[3], downloads=row[4],
            bytes_served=row[5], failed_attempts=row[6], locked_until=_dt(row[7]),
            last_download_at=_dt(row[8]),
        )

    def _with_recipients(self, share: Share) -> Share:
        rows = self._query(
            f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE share_id=? ORDER BY rowid",
            (share.id,),
        )
        share.recipients = [self._recipient(r) for r in rows]
        return share

    def add_share(self, share: Share, wrapped_key: bytes) -> None:
        with self._tx() as con:
            con.execute(
                f"INSERT INTO shares({_SHARE_COLS}, wrapped_key)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (share.id, share.name, share.size, share.sha256, _ts(share.created_at),
                 _ts(share.expires_at), share.max_downloads, share.password_hash, share.blob_id,
                 share.sender, share.message, int(share.notify), _ts(share.revoked_at),
                 _ts(share.purged_at), share.purge_reason, _ts(share.broken_at),
                 share.broken_reason, wrapped_key),
            )
            for r in share.recipients:
                self._insert_recipient(con, r)

    @staticmethod
    def _insert_recipient(con: sqlite3.Connection, r: Recipient) -> None:
        con.execute(
            f"INSERT INTO recipients({_RECIPIENT_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
            (r.id, r.share_id, r.email, r.token_hash, r.downloads, r.bytes_served,
             r.failed_attempts, _ts(r.locked_until), _ts(r.last_download_at)),
        )

    def add_recipient(self, recipient: Recipient) -> None:
        with self._tx() as con:
            self._insert_recipient(con, recipient)

    def get_share(self, share_id: str) -> Share | None:
        rows = self._query(f"SELECT {_SHARE_COLS} FROM shares WHERE id=?", (share_id,))
        return self._with_recipients(self._share(rows[0])) if rows else None

    def list_shares(self) -> list[Share]:
        rows = self._query(f"SELECT {_SHARE_COLS} FROM shares ORDER BY created_at")
        return [self._with_recipients(self._share(r)) for r in rows]

    def find_by_token_hash(self, token_hash: str) -> tuple[Share, Recipient] | None:
        rows = self._query(
            f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE token_hash=?", (token_hash,)
        )
        if not rows:
            return None
        share = self.get_share(rows[0][1])
        if share is None:
            return None
        recipient = next(r for r in share.recipients if r.token_hash == token_hash)
        return share, recipient

    def _update(self, table: str, key: str, **values: Any) -> None:
        if not values:
            return
        cols = ", ".join(f"{k}=?" for k in values)
        args = [_ts(v) if k in _DATETIME_FIELDS else v for k, v in values.items()]
        with self._tx() as con:
            con.execute(f"UPDATE {table} SET {cols} WHERE id=?", (*args, key))

    def update_share(self, share_id: str, **values: Any) -> None:
        self._update("shares", share_id, **values)

    def update_recipient(self, recipient_id: str, **values: Any) -> None:
        self._update("recipients", recipient_id, **values)

    def add_download(self, recipient_id: str, completed: bool, nbytes: int) -> None:
        now = _ts(datetime.now(UTC))
        with self._tx() as con:
            con.execute(
                "UPDATE recipients SET bytes_served = bytes_served + ?,"
                " downloads = downloads + ?,"
                " last_download_at = CASE WHEN ? THEN ? ELSE last_download_at END WHERE id=?",
                (nbytes, int(completed), int(completed), now, recipient_id),
            )

    def wrapped_key(self, share_id: str) -> bytes | None:
        rows = self._query("SELECT wrapped_key FROM shares WHERE id=?", (share_id,))
        return rows[0][0] if rows else None

    def destroy_key(self, share_id: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE shares SET wrapped_key=NULL WHERE id=?", (share_id,))
        with self._lock:
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- exact accounting: each method is ONE statement (see the module docstring) ----------
    def _one(self, sql: str, args: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._tx() as con:
            return con.execute(sql, args).fetchall()

    def acquire_download(
        self, recipient_id: str, *, now: datetime, lease_until: datetime, max_downloads: int,
        slot: bool, nbytes: int, bytes_cap: int,
    ) -> bool:
        """Take a download slot (when ``slot``) and reserve ``nbytes``; False if over a limit."""
        rows = self._one(
            f"UPDATE recipients SET"
            f" in_flight = (CASE WHEN {_LIVE} THEN in_flight ELSE 0 END) + :slot,"
            f" reserved_bytes = (CASE WHEN {_LIVE} THEN reserved_bytes ELSE 0 END) + :n,"
            f" lease_until = :lease"
            f" WHERE id = :id"
            f" AND (:max <= 0 OR :slot = 0"
            f"      OR (CASE WHEN {_LIVE} THEN in_flight ELSE 0 END) + downloads < :max)"
            f" AND (:cap <= 0"
            f"      OR bytes_served + (CASE WHEN {_LIVE} THEN reserved_bytes ELSE 0 END) + :n"
            f"         <= :cap)"
            f" RETURNING id",
            {"id": recipient_id, "now": _ts(now), "lease": _ts(lease_until),
             "slot": int(slot), "n": nbytes, "max": max_downloads, "cap": bytes_cap},
        )
        return bool(rows)

    def renew_leases(self, recipient_ids: list[str], now: datetime,
                     lease_until: datetime) -> None:
        """Extend the lease of links with downloads in flight in this process."""
        if not recipient_ids:
            return
        marks = ",".join("?" * len(recipient_ids))
        with self._tx() as con:
            con.execute(
                f"UPDATE recipients SET lease_until = ? WHERE id IN ({marks})",
                (_ts(lease_until), *recipient_ids),
            )

    def release_download(
        self, recipient_id: str, *, now: datetime, slot: bool, reserved: int, start: int,
        sent: int, size: int, max_downloads: int,
    ) -> bool:
        """End a download that delivered ``sent`` bytes from ``start``; True if it completed
        the file for this link (every byte 0..size-1 delivered) and so counted."""
        counted = (
            "(:slot = 1 AND :start <= delivered_prefix AND :start + :sent >= :size"
            " AND (:max <= 0 OR downloads < :max))"
        )
        rows = self._one(
            f"UPDATE recipients SET"
            f" in_flight = MAX(0, in_flight - :slot),"
            f" reserved_bytes = MAX(0, reserved_bytes - :reserved),"
            f" bytes_served = bytes_served + :sent,"
            f" last_counted = CASE WHEN {counted} THEN 1 ELSE 0 END,"
            f" downloads = downloads + CASE WHEN {counted} THEN 1 ELSE 0 END,"
            f" last_download_at = CASE WHEN {counted} THEN :now ELSE last_download_at END,"
            f" delivered_prefix = CASE"
            f"   WHEN :start > delivered_prefix THEN delivered_prefix"
            f"   WHEN :start + :sent >= :size THEN 0"
            f"   ELSE MAX(delivered_prefix, :start + :sent) END"
            f" WHERE id = :id RETURNING last_counted",
            {"id": recipient_id, "now": _ts(now), "slot": int(slot), "reserved": reserved,
             "start": start, "sent": sent, "size": size, "max": max_downloads},
        )
        return bool(rows and rows[0][0])

    def reserve_password_check(
        self, recipient_id: str, *, now: datetime, check_until: datetime,
        reset_at: datetime,
    ) -> int | None:
        """Count one password attempt before it is checked; None if the link is locked or a
        check for it is running. Returns the attempt's number since the counter was reset."""
        rows = self._one(
            "UPDATE recipients SET"
            " failed_attempts = (CASE WHEN failures_reset_at IS NULL"
            "   OR failures_reset_at <= :now THEN 0 ELSE failed_attempts END) + 1,"
            " check_until = :check, failures_reset_at = :reset"
            " WHERE id = :id"
            " AND (check_until IS NULL OR check_until <= :now)"
            " AND (locked_until IS NULL OR locked_until <= :now)"
            " RETURNING failed_attempts",
            {"id": recipient_id, "now": _ts(now), "check": _ts(check_until),
             "reset": _ts(reset_at)},
        )
        return rows[0][0] if rows else None

    def finish_password_check(
        self, recipient_id: str, *, ok: bool, locked_until: datetime | None,
        reset_at: datetime | None,
    ) -> None:
        """Record a checked password: right resets the counter, wrong may lock the link."""
        with self._tx() as con:
            if ok:
                con.execute(
                    "UPDATE recipients SET failed_attempts = 0, locked_until = NULL,"
                    " check_until = NULL, failures_reset_at = NULL WHERE id = ?",
                    (recipient_id,),
                )
            else:
                con.execute(
                    "UPDATE recipients SET locked_until = ?, failures_reset_at = ?,"
                    " check_until = NULL WHERE id = ?",
                    (_ts(locked_until), _ts(reset_at), recipient_id),
                )

    def mark_broken(self, share_id: str, now: datetime, reason: str) -> bool:
        """Flag a share whose blob is missing or damaged; True the first time."""
        rows = self._one(
            "UPDATE shares SET broken_at = :now, broken_reason = :why"
            " WHERE id = :id AND broken_at IS NULL RETURNING id",
            {"id": share_id, "now": _ts(now), "why": reason},
        )
        return bool(rows)

    def inactive_shares(self, share_ids: list[str], now: datetime) -> set[str]:
        """Which of ``share_ids`` may no longer be downloaded (revoked, purged, expired,
        broken, key destroyed): their running downloads are cancelled."""
        if not share_ids:
            return set()
        marks = ",".join("?" * len(share_ids))
        rows = self._query(
            f"SELECT id FROM shares WHERE id IN ({marks}) AND (revoked_at IS NOT NULL"
            f" OR purged_at IS NOT NULL OR broken_at IS NOT NULL OR expires_at <= ?"
            f" OR wrapped_key IS NULL)",
            (*share_ids, _ts(now)),
        )
        found = {r[0] for r in rows}
        known = {r[0] for r in self._query(f"SELECT id FROM shares WHERE id IN ({marks})",
                                           tuple(share_ids))}
        return found | (set(share_ids) - known)
