"""Share metadata storage: the :class:`MetadataStore` interface and its SQLite implementation.

The store holds shares, recipients and each share's WRAPPED key (never the blob). Another
backend (PostgreSQL) implements the same methods. The SQLite store runs in WAL mode with
``secure_delete`` on, and checkpoints the WAL after a key is destroyed so the wrapped key's
bytes do not linger in the database files.
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


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_SHARE_COLS = (
    "id, name, size, sha256, created_at, expires_at, max_downloads, password_hash, blob_id,"
    " sender, message, notify, revoked_at, purged_at, purge_reason"
)
_RECIPIENT_COLS = (
    "id, share_id, email, token_hash, downloads, bytes_served, failed_attempts, locked_until,"
    " last_download_at"
)
_DATETIME_FIELDS = {"created_at", "expires_at", "revoked_at", "purged_at", "locked_until",
                    "last_download_at"}


class SqliteMetadataStore:
    """The embedded default: one SQLite file (WAL) under ``state_dir()``."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from backend.paths import state_dir

            path = state_dir() / "shares.sqlite"
        self.path = Path(path)
        ensure_private_dir(self.path.parent)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA busy_timeout=15000")
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA secure_delete=ON")
        self._con.executescript(_SCHEMA)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + suffix).chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, args).fetchall()

    @staticmethod
    def _share(row: tuple[Any, ...]) -> Share:
        return Share(
            id=row[0], name=row[1], size=row[2], sha256=row[3], created_at=_dt(row[4]),
            expires_at=_dt(row[5]), max_downloads=row[6], password_hash=row[7], blob_id=row[8],
            sender=row[9], message=row[10], notify=bool(row[11]), revoked_at=_dt(row[12]),
            purged_at=_dt(row[13]), purge_reason=row[14],
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
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (share.id, share.name, share.size, share.sha256, _ts(share.created_at),
                 _ts(share.expires_at), share.max_downloads, share.password_hash, share.blob_id,
                 share.sender, share.message, int(share.notify), _ts(share.revoked_at),
                 _ts(share.purged_at), share.purge_reason, wrapped_key),
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
