"""The share metadata store on PostgreSQL: the same methods as ``SqliteMetadataStore``, shared by
every ``ferry serve`` instance of a scaled-out service (docs/sharing.md "Deployment").

Driver: psycopg 3 with ``psycopg_pool`` (docs/sharing.md says why). The store keeps the
synchronous :class:`backend.shares.store.MetadataStore` interface the service already calls:
each accounting method is ONE autocommitted ``UPDATE ... WHERE ... RETURNING`` (the row lock
makes it exact across instances), as in ``backend/shares/store.py``, with ``GREATEST`` for
SQLite's ``MAX(a, b)``. What else is shared here:

* address limits (unknown links per address, wrong passwords per address and link):
  :class:`PgAddressLimiter`, one upsert per failure;
* advisory locks (:meth:`PostgresMetadataStore.advisory_lock`): one instance purges at a time;
  the audit chain (``backend/shares/pgaudit.py``) serialises its appends with another;
* revocation: every instance polls :meth:`inactive_shares` for the shares it is streaming
  every half second (``backend/shares/service.py``), so a revoke on one instance stops
  downloads on the others within a second;
* the schema version (table ``schema_version``): migrations run in order under an advisory
  lock, and a database written by a newer Ferry is refused with a clear error.

``queries`` counts the statements sent (the benchmark reports it per download).
"""

# ruff: noqa: S608  (SQL is built only from the column-name constants below, never from input)
from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Hashable, Iterator
from datetime import datetime
from typing import Any

from backend.errors import AuthError, ConfigError, ConnectError
from backend.shares.model import Recipient, Share
from backend.shares.ratelimit import BASE_LOCK_SECONDS, FREE_TRIES, MAX_LOCK_SECONDS, QUIET_SECONDS

SCHEMA_VERSION = 1

# each entry: the statements that take the schema from version N-1 to N
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE shares (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            size BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            max_downloads INTEGER NOT NULL,
            password_hash TEXT,
            blob_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            notify BOOLEAN NOT NULL DEFAULT FALSE,
            revoked_at TIMESTAMPTZ,
            purged_at TIMESTAMPTZ,
            purge_reason TEXT,
            broken_at TIMESTAMPTZ,
            broken_reason TEXT,
            wrapped_key BYTEA
        )""",
        """CREATE TABLE recipients (
            seq BIGSERIAL UNIQUE,
            id TEXT PRIMARY KEY,
            share_id TEXT NOT NULL REFERENCES shares(id),
            email TEXT,
            token_hash TEXT NOT NULL UNIQUE,
            downloads INTEGER NOT NULL DEFAULT 0,
            bytes_served BIGINT NOT NULL DEFAULT 0,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            locked_until TIMESTAMPTZ,
            last_download_at TIMESTAMPTZ,
            in_flight INTEGER NOT NULL DEFAULT 0,
            reserved_bytes BIGINT NOT NULL DEFAULT 0,
            lease_until TIMESTAMPTZ,
            delivered_prefix BIGINT NOT NULL DEFAULT 0,
            last_counted INTEGER NOT NULL DEFAULT 0,
            check_until TIMESTAMPTZ,
            failures_reset_at TIMESTAMPTZ
        )""",
        "CREATE INDEX recipients_share ON recipients(share_id)",
        """CREATE TABLE address_failures (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            failures INTEGER NOT NULL,
            locked_until TIMESTAMPTZ,
            last TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (scope, key)
        )""",
        """CREATE TABLE audit (
            id BIGINT PRIMARY KEY,
            ts TEXT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            fields TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_event ON audit(event)",
        """CREATE TABLE audit_head (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            rows BIGINT NOT NULL,
            hash TEXT NOT NULL,
            mac TEXT NOT NULL
        )""",
    ],
}

_SHARE_COLS = (
    "id, name, size, sha256, created_at, expires_at, max_downloads, password_hash, blob_id,"
    " sender, message, notify, revoked_at, purged_at, purge_reason, broken_at, broken_reason"
)
_RECIPIENT_COLS = (
    "id, share_id, email, token_hash, downloads, bytes_served, failed_attempts, locked_until,"
    " last_download_at"
)
_SHARE_FIELDS = {"name", "size", "sha256", "created_at", "expires_at", "max_downloads",
                 "password_hash", "blob_id", "sender", "message", "notify", "revoked_at",
                 "purged_at", "purge_reason", "broken_at", "broken_reason"}
_RECIPIENT_FIELDS = {"email", "downloads", "bytes_served", "failed_attempts", "locked_until",
                     "last_download_at"}

_LIVE = "(lease_until IS NOT NULL AND lease_until > %(now)s)"


def lock_key(name: str) -> int:
    """The advisory-lock number for ``name`` (stable across instances and versions)."""
    return zlib.crc32(f"ferry-share:{name}".encode()) - (1 << 31)


class PostgresMetadataStore:
    """Shares, recipients, accounting, address limits and the audit chain in PostgreSQL."""

    def __init__(self, conninfo: str, *, password: str | None = None, min_size: int = 1,
                 max_size: int = 16, migrate: bool = True) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "ferry-serve"}
        if password is not None:
            kwargs["password"] = password
        self.conninfo = conninfo
        self.queries = 0
        self._count = threading.Lock()
        self._psycopg = psycopg
        try:  # connect once outside the pool so a wrong password or host is one clear line
            psycopg.connect(conninfo, connect_timeout=10, **kwargs).close()
        except psycopg.OperationalError as exc:
            raise _connect_error(conninfo, exc) from None
        self.pool = ConnectionPool(conninfo, kwargs=kwargs, min_size=min_size,
                                   max_size=max_size, open=True, timeout=30,
                                   name="ferry-shares")
        if migrate:
            self.migrate()
        else:
            self.check_version()

    def close(self) -> None:
        self.pool.close()

    # -- plumbing -------------------------------------------------------------------------
    def _exec(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._count:
            self.queries += 1
        with self.pool.connection() as con:
            cur = con.execute(sql, args)
            return cur.fetchall() if cur.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection inside one transaction (committed at the end, rolled back on error)."""
        with self.pool.connection() as con, con.transaction():
            yield _Counting(con, self)

    # -- schema ---------------------------------------------------------------------------
    def _version(self, con: Any) -> int:
        con.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                    " component TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                    " written_by TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = con.execute("SELECT version FROM schema_version WHERE component='shares'"
                          ).fetchone()
        return int(row[0]) if row else 0

    def _refuse_newer(self, have: int) -> None:
        if have > SCHEMA_VERSION:
            raise ConfigError(
                f"the share database has schema version {have}, this Ferry knows up to "
                f"{SCHEMA_VERSION}: it was written by a newer Ferry",
                hint="upgrade Ferry on this machine (every instance must run the same or a "
                     "newer version)",
            )

    def check_version(self) -> int:
        with self.transaction() as con:
            have = self._version(con)
        self._refuse_newer(have)
        return have

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION` (one instance at a time); returns the
        version found before."""
        from backend import __version__

        with self.transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("migrate"),))
            have = self._version(con)
            self._refuse_newer(have)
            for version in range(have + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_version(component, version, written_by)"
                    " VALUES ('shares', %s, %s) ON CONFLICT (component) DO UPDATE"
                    " SET version = EXCLUDED.version, written_by = EXCLUDED.written_by,"
                    " updated_at = now()",
                    (version, f"ferry {__version__}"),
                )
        return have

    # -- locks ----------------------------------------------------------------------------
    def advisory_lock(self, name: str) -> AdvisoryLock:
        return AdvisoryLock(self, lock_key(name))

    def address_limiter(self, scope: str, quiet: float = QUIET_SECONDS) -> PgAddressLimiter:
        return PgAddressLimiter(self, scope, quiet)

    # -- records --------------------------------------------------------------------------
    @staticmethod
    def _share(row: tuple[Any, ...]) -> Share:
        return Share(
            id=row[0], name=row[1], size=row[2], sha256=row[3], created_at=row[4],
            expires_at=row[5], max_downloads=row[6], password_hash=row[7], blob_id=row[8],
            sender=row[9], message=row[10], notify=bool(row[11]), revoked_at=row[12],
            purged_at=row[13], purge_reason=row[14], broken_at=row[15], broken_reason=row[16],
        )

    @staticmethod
    def _recipient(row: tuple[Any, ...]) -> Recipient:
        return Recipient(
            id=row[0], share_id=row[1], email=row[2], token_hash=row[3], downloads=row[4],
            bytes_served=row[5], failed_attempts=row[6], locked_until=row[7],
            last_download_at=row[8],
        )

    def _shares_with_recipients(self, where: str, args: Any) -> list[Share]:
        """Shares and their recipients in ONE statement (a LEFT JOIN)."""
        rcols = ", ".join(f"r.{c.strip()}" for c in _RECIPIENT_COLS.split(","))
        scols = ", ".join(f"s.{c.strip()}" for c in _SHARE_COLS.split(","))
        rows = self._exec(
            f"SELECT {scols}, {rcols} FROM shares s LEFT JOIN recipients r ON r.share_id = s.id"
            f" {where} ORDER BY s.created_at, s.id, r.seq", args,
        )
        out: dict[str, Share] = {}
        n = len(_SHARE_COLS.split(","))
        for row in rows:
            share = out.get(row[0])
            if share is None:
                share = out[row[0]] = self._share(row[:n])
            if row[n] is not None:
                share.recipients.append(self._recipient(row[n:]))
        return list(out.values())

    def add_share(self, share: Share, wrapped_key: bytes) -> None:
        with self.transaction() as con:
            con.execute(
                f"INSERT INTO shares({_SHARE_COLS}, wrapped_key) VALUES"
                " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (share.id, share.name, share.size, share.sha256, share.created_at,
                 share.expires_at, share.max_downloads, share.password_hash, share.blob_id,
                 share.sender, share.message, share.notify, share.revoked_at, share.purged_at,
                 share.purge_reason, share.broken_at, share.broken_reason, wrapped_key),
            )
            for r in share.recipients:
                self._insert_recipient(con, r)

    @staticmethod
    def _insert_recipient(con: Any, r: Recipient) -> None:
        con.execute(
            f"INSERT INTO recipients({_RECIPIENT_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (r.id, r.share_id, r.email, r.token_hash, r.downloads, r.bytes_served,
             r.failed_attempts, r.locked_until, r.last_download_at),
        )

    def add_recipient(self, recipient: Recipient) -> None:
        with self.transaction() as con:
            self._insert_recipient(con, recipient)

    def get_share(self, share_id: str) -> Share | None:
        found = self._shares_with_recipients("WHERE s.id = %(id)s", {"id": share_id})
        return found[0] if found else None

    def list_shares(self) -> list[Share]:
        return self._shares_with_recipients("", None)

    def find_by_token_hash(self, token_hash: str) -> tuple[Share, Recipient] | None:
        found = self._shares_with_recipients(
            "WHERE s.id = (SELECT share_id FROM recipients WHERE token_hash = %(t)s)",
            {"t": token_hash},
        )
        if not found:
            return None
        share = found[0]
        recipient = next((r for r in share.recipients if r.token_hash == token_hash), None)
        return (share, recipient) if recipient else None

    def _update(self, table: str, allowed: set[str], key: str, **values: Any) -> None:
        if not values:
            return
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown {table} columns: {sorted(unknown)}")
        cols = ", ".join(f"{k} = %({k})s" for k in values)
        self._exec(f"UPDATE {table} SET {cols} WHERE id = %(_key)s", {**values, "_key": key})

    def update_share(self, share_id: str, **values: Any) -> None:
        if "notify" in values:
            values["notify"] = bool(values["notify"])
        self._update("shares", _SHARE_FIELDS, share_id, **values)

    def update_recipient(self, recipient_id: str, **values: Any) -> None:
        self._update("recipients", _RECIPIENT_FIELDS, recipient_id, **values)

    def add_download(self, recipient_id: str, completed: bool, nbytes: int) -> None:
        self._exec(
            "UPDATE recipients SET bytes_served = bytes_served + %(n)s,"
            " downloads = downloads + %(c)s,"
            " last_download_at = CASE WHEN %(c)s = 1 THEN now() ELSE last_download_at END"
            " WHERE id = %(id)s",
            {"n": nbytes, "c": int(completed), "id": recipient_id},
        )

    def wrapped_key(self, share_id: str) -> bytes | None:
        rows = self._exec("SELECT wrapped_key FROM shares WHERE id = %s", (share_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def destroy_key(self, share_id: str) -> None:
        self._exec("UPDATE shares SET wrapped_key = NULL WHERE id = %s", (share_id,))
        with contextlib.suppress(self._psycopg.Error):  # old row versions: reclaim them now
            self._exec("VACUUM shares")

    # -- exact accounting: each method is ONE statement (backend/shares/store.py) ----------
    def acquire_download(
        self, recipient_id: str, *, now: datetime, lease_until: datetime, max_downloads: int,
        slot: bool, nbytes: int, bytes_cap: int,
    ) -> bool:
        rows = self._exec(
            f"UPDATE recipients SET"
            f" in_flight = (CASE WHEN {_LIVE} THEN in_flight ELSE 0 END) + %(slot)s,"
            f" reserved_bytes = (CASE WHEN {_LIVE} THEN reserved_bytes ELSE 0 END) + %(n)s,"
            f" lease_until = %(lease)s"
            f" WHERE id = %(id)s"
            f" AND (%(max)s <= 0 OR %(slot)s = 0"
            f"      OR (CASE WHEN {_LIVE} THEN in_flight ELSE 0 END) + downloads < %(max)s)"
            f" AND (%(cap)s <= 0"
            f"      OR bytes_served + (CASE WHEN {_LIVE} THEN reserved_bytes ELSE 0 END) + %(n)s"
            f"         <= %(cap)s)"
            f" RETURNING id",
            {"id": recipient_id, "now": now, "lease": lease_until, "slot": int(slot),
             "n": int(nbytes), "max": max_downloads, "cap": int(bytes_cap)},
        )
        return bool(rows)

    def renew_leases(self, recipient_ids: list[str], now: datetime,
                     lease_until: datetime) -> None:
        if recipient_ids:
            self._exec("UPDATE recipients SET lease_until = %s WHERE id = ANY(%s)",
                       (lease_until, list(recipient_ids)))

    def release_download(
        self, recipient_id: str, *, now: datetime, slot: bool, reserved: int, start: int,
        sent: int, size: int, max_downloads: int,
    ) -> bool:
        counted = (
            "(%(slot)s = 1 AND %(start)s <= delivered_prefix AND %(start)s + %(sent)s >= %(size)s"
            " AND (%(max)s <= 0 OR downloads < %(max)s))"
        )
        rows = self._exec(
            f"UPDATE recipients SET"
            f" in_flight = GREATEST(0, in_flight - %(slot)s),"
            f" reserved_bytes = GREATEST(0, reserved_bytes - %(reserved)s),"
            f" bytes_served = bytes_served + %(sent)s,"
            f" last_counted = CASE WHEN {counted} THEN 1 ELSE 0 END,"
            f" downloads = downloads + CASE WHEN {counted} THEN 1 ELSE 0 END,"
            f" last_download_at = CASE WHEN {counted} THEN %(now)s ELSE last_download_at END,"
            f" delivered_prefix = CASE"
            f"   WHEN %(start)s > delivered_prefix THEN delivered_prefix"
            f"   WHEN %(start)s + %(sent)s >= %(size)s THEN 0"
            f"   ELSE GREATEST(delivered_prefix, %(start)s + %(sent)s) END"
            f" WHERE id = %(id)s RETURNING last_counted",
            {"id": recipient_id, "now": now, "slot": int(slot), "reserved": int(reserved),
             "start": int(start), "sent": int(sent), "size": int(size), "max": max_downloads},
        )
        return bool(rows and rows[0][0])

    def reserve_password_check(
        self, recipient_id: str, *, now: datetime, check_until: datetime,
        reset_at: datetime,
    ) -> int | None:
        rows = self._exec(
            "UPDATE recipients SET"
            " failed_attempts = (CASE WHEN failures_reset_at IS NULL"
            "   OR failures_reset_at <= %(now)s THEN 0 ELSE failed_attempts END) + 1,"
            " check_until = %(check)s, failures_reset_at = %(reset)s"
            " WHERE id = %(id)s"
            " AND (check_until IS NULL OR check_until <= %(now)s)"
            " AND (locked_until IS NULL OR locked_until <= %(now)s)"
            " RETURNING failed_attempts",
            {"id": recipient_id, "now": now, "check": check_until, "reset": reset_at},
        )
        return rows[0][0] if rows else None

    def finish_password_check(
        self, recipient_id: str, *, ok: bool, locked_until: datetime | None,
        reset_at: datetime | None,
    ) -> None:
        if ok:
            self._exec(
                "UPDATE recipients SET failed_attempts = 0, locked_until = NULL,"
                " check_until = NULL, failures_reset_at = NULL WHERE id = %s", (recipient_id,),
            )
        else:
            self._exec(
                "UPDATE recipients SET locked_until = %s, failures_reset_at = %s,"
                " check_until = NULL WHERE id = %s", (locked_until, reset_at, recipient_id),
            )

    def mark_broken(self, share_id: str, now: datetime, reason: str) -> bool:
        rows = self._exec(
            "UPDATE shares SET broken_at = %(now)s, broken_reason = %(why)s"
            " WHERE id = %(id)s AND broken_at IS NULL RETURNING id",
            {"id": share_id, "now": now, "why": reason},
        )
        return bool(rows)

    def inactive_shares(self, share_ids: list[str], now: datetime) -> set[str]:
        """Which of ``share_ids`` may no longer be downloaded (one statement; an unknown id
        counts as inactive)."""
        if not share_ids:
            return set()
        rows = self._exec(
            "SELECT i.id FROM unnest(%(ids)s::text[]) AS i(id) LEFT JOIN shares s ON s.id = i.id"
            " WHERE s.id IS NULL OR s.revoked_at IS NOT NULL OR s.purged_at IS NOT NULL"
            " OR s.broken_at IS NOT NULL OR s.expires_at <= %(now)s OR s.wrapped_key IS NULL",
            {"ids": list(share_ids), "now": now},
        )
        return {r[0] for r in rows}

    def forget_address_failures(self, quiet: float = QUIET_SECONDS) -> int:
        """Drop address counters that are forgotten anyway (run by the purge)."""
        rows = self._exec(
            "DELETE FROM address_failures WHERE GREATEST(COALESCE(locked_until, last), last)"
            " + make_interval(secs => %s) <= now() RETURNING 1", (quiet,),
        )
        return len(rows)


class _Counting:
    """A connection wrapper that counts statements into the store's ``queries``."""

    def __init__(self, con: Any, store: PostgresMetadataStore) -> None:
        self._con = con
        self._store = store

    def execute(self, sql: str, args: Any = None) -> Any:
        with self._store._count:
            self._store.queries += 1
        return self._con.execute(sql, args)


class AdvisoryLock:
    """A session-level advisory lock held on one pooled connection until :meth:`release`."""

    def __init__(self, store: PostgresMetadataStore, key: int) -> None:
        self._store = store
        self._key = key
        self._cm: Any = None
        self._con: Any = None

    def acquire(self, wait: bool = False, timeout: float = 30.0) -> bool:
        cm = self._store.pool.connection()
        con = cm.__enter__()
        try:
            if wait:
                con.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
                try:
                    con.execute("SELECT pg_advisory_lock(%s)", (self._key,))
                    got = True
                except self._store._psycopg.errors.LockNotAvailable:
                    got = False
                finally:
                    con.execute("RESET lock_timeout")
            else:
                row = con.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                got = bool(row is not None and row[0])
        except BaseException:
            cm.__exit__(None, None, None)
            raise
        if not got:
            cm.__exit__(None, None, None)
            return False
        self._cm, self._con = cm, con
        return True

    def release(self) -> None:
        if self._con is None:
            return
        try:
            self._con.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        finally:
            self._cm.__exit__(None, None, None)
            self._cm = self._con = None


def _lock_expr(failures: str) -> str:
    """SQL for ``backend.shares.ratelimit.lock_seconds`` of the expression ``failures``."""
    return (f"CASE WHEN {failures} < {FREE_TRIES} THEN 0 ELSE LEAST({MAX_LOCK_SECONDS},"
            f" {BASE_LOCK_SECONDS} * power(2, LEAST({failures} - {FREE_TRIES}, 32))) END")


class PgAddressLimiter:
    """``backend.shares.ratelimit.AddressLimiter`` with its counters in PostgreSQL, so every
    instance counts the same failures; one statement per call, on the database's clock."""

    def __init__(self, store: PostgresMetadataStore, scope: str, quiet: float) -> None:
        self._store = store
        self.scope = scope
        self.quiet = quiet

    @staticmethod
    def _key(key: Hashable) -> str:
        return "\x1f".join(map(str, key)) if isinstance(key, tuple) else str(key)

    def retry_after(self, key: Hashable) -> float:
        rows = self._store._exec(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM locked_until - now()))::float8"
            " FROM address_failures WHERE scope = %(s)s AND key = %(k)s"
            " AND locked_until IS NOT NULL"
            " AND GREATEST(locked_until, last) + make_interval(secs => %(q)s) > now()",
            {"s": self.scope, "k": self._key(key), "q": self.quiet},
        )
        return float(rows[0][0]) if rows else 0.0

    def failure(self, key: Hashable) -> float:
        fresh = ("GREATEST(COALESCE(a.locked_until, a.last), a.last)"
                 " + make_interval(secs => %(q)s) <= now()")
        n = f"(CASE WHEN {fresh} THEN 1 ELSE a.failures + 1 END)"
        rows = self._store._exec(
            "INSERT INTO address_failures AS a (scope, key, failures, locked_until, last)"
            f" VALUES (%(s)s, %(k)s, 1, NULL, now())"
            f" ON CONFLICT (scope, key) DO UPDATE SET"
            f" failures = {n},"
            f" locked_until = CASE WHEN ({_lock_expr(n)}) > 0"
            f"   THEN now() + make_interval(secs => {_lock_expr(n)})"
            f"   WHEN {fresh} THEN NULL ELSE a.locked_until END,"
            f" last = now()"
            f" RETURNING failures",
            {"s": self.scope, "k": self._key(key), "q": self.quiet},
        )
        failures = int(rows[0][0])
        from backend.shares.ratelimit import lock_seconds

        return lock_seconds(failures)


def _connect_error(conninfo: str, exc: Exception) -> Exception:
    from backend.shares.backends import redact_url

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = redact_url(conninfo)
    if "password" in text.lower() or "authentication" in text.lower():
        return AuthError(f"PostgreSQL refused the login for {where}: {text}",
                         hint="set FERRY_DATABASE_PASSWORD or database_password_file "
                              "(docs/sharing.md \"Deployment\")")
    return ConnectError(f"cannot reach PostgreSQL at {where}: {text}",
                        hint="check the host, port and database name in --database")
