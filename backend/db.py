"""The one SQLite helper of Ferry's four stores: connections, pragmas, transactions, busy
handling and schema versions with migrations.

The stores (transfer journal ``backend/transfers/journal.py``, audit log ``backend/audit.py``,
case store ``backend/cases/store.py``, SQLite share store ``backend/shares/store.py``) each
declare a :class:`Schema`: an ordered tuple of migration functions, where migration ``i`` (from
1) takes the database from version ``i - 1`` to ``i``. The version is ``PRAGMA user_version``
(the PostgreSQL share store keeps the same idea in its ``schema_version`` table,
``backend/shares/pgstore.py``). :func:`open_schema`:

* a new, empty database runs every migration (no backup: nothing to keep);
* an older one (databases from before schema versions are version 0) is first copied to
  ``<name>.bak-v<N>`` (SQLite's online backup, so the WAL is included), then migrated in place
  in ONE ``BEGIN IMMEDIATE`` transaction that also sets the new version, so a crash or a
  failing migration leaves it as it was, and two processes opening it at once migrate once;
* a newer one (written by a newer Ferry) is refused with one line: :class:`ConfigError`
  (exit 3), nothing written.

Migrations that bring a version-0 database up must tolerate every shape older releases left
(:func:`add_missing_columns`); later ones can assume the previous version exactly.

Connections (:func:`connect`) are autocommit (``isolation_level=None``) with WAL, foreign
keys, ``synchronous=NORMAL`` and a busy timeout; writes go through :func:`transaction`
(``BEGIN IMMEDIATE``: the write lock is taken up front, so a transaction never fails half-way
on a lock upgrade). A lock held past the busy timeout becomes a :class:`ConfigError` naming
the file, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ConfigError

BUSY_MS = 15000
"""How long a statement waits for another process's lock before failing."""

Migration = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Schema:
    """A store's migrations in order; its version is how many there are."""

    what: str
    """The store in words, for messages ("transfer queue")."""
    migrations: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


def connect(path: Path, what: str, *, busy_ms: int = BUSY_MS, check_same_thread: bool = True,
            secure_delete: bool = False) -> sqlite3.Connection:
    """An autocommit connection with Ferry's pragmas; ConfigError if it cannot be opened."""
    try:
        con = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None,
                              check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the {what} {path}: {exc}") from None
    try:
        con.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        with contextlib.suppress(sqlite3.OperationalError):  # a read-only copy keeps its mode
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
        if secure_delete:
            con.execute("PRAGMA secure_delete=ON")
    except sqlite3.DatabaseError as exc:
        con.close()
        raise ConfigError(
            f"the {what} {path} is unreadable ({exc})", hint="move it aside to start afresh"
        ) from None
    return con


@contextlib.contextmanager
def connection(path: Path, what: str, *, secure_delete: bool = False
               ) -> Iterator[sqlite3.Connection]:
    """:func:`connect` for one operation, closed afterwards."""
    con = connect(path, what, secure_delete=secure_delete)
    try:
        yield con
    finally:
        con.close()


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def begin(con: sqlite3.Connection, what: str, path: Path) -> None:
    """``BEGIN IMMEDIATE``; a lock still held by another process after the busy timeout is a
    one-line ConfigError."""
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _busy(exc):
            raise ConfigError(
                f"the {what} {path} is locked by another process",
                hint="try again once the other Ferry has finished writing",
            ) from None
        raise ConfigError(f"cannot write the {what} {path}: {exc}") from None


@contextlib.contextmanager
def transaction(con: sqlite3.Connection, what: str, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed at the end, rolled back on any exception."""
    begin(con, what, path)
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def private_files(path: Path) -> None:
    """The database and its WAL files are the user's only (0600)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).chmod(0o600)


def user_version(con: sqlite3.Connection) -> int:
    return int(con.execute("PRAGMA user_version").fetchone()[0])


def _is_empty(con: sqlite3.Connection) -> bool:
    return int(con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


def backup_path(path: Path, version: int) -> Path:
    return path.with_name(f"{path.name}.bak-v{version}")


def _backup(path: Path, version: int) -> Path:
    """Copy the database as it is now (WAL included) to ``<name>.bak-v<version>``."""
    target = backup_path(path, version)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
    return target


def _refuse_newer(schema: Schema, path: Path, have: int) -> None:
    if have > schema.version:
        raise ConfigError(
            f"the {schema.what} {path} was written by a newer Ferry (schema version {have},"
            f" this Ferry knows up to {schema.version})",
            hint="upgrade Ferry, or move the file aside to start afresh",
        )


def open_schema(con: sqlite3.Connection, path: Path, schema: Schema) -> int:
    """Bring the database behind ``con`` to ``schema.version`` (see the module docstring);
    returns the version it had. ``con`` must be a :func:`connect` connection."""
    try:
        have = user_version(con)
        _refuse_newer(schema, path, have)
        if have == schema.version:
            return have  # the common case: nothing is written, not even a lock taken
        with transaction(con, schema.what, path):
            have = user_version(con)  # another process may have migrated meanwhile
            _refuse_newer(schema, path, have)
            if have < schema.version and not (have == 0 and _is_empty(con)):
                try:
                    _backup(path, have)
                except (OSError, sqlite3.Error) as exc:
                    raise ConfigError(
                        f"cannot back up the {schema.what} {path} before upgrading it: {exc}",
                        hint="free some space or fix the folder's permissions",
                    ) from None
            for migration in schema.migrations[have:]:
                migration(con)
            con.execute(f"PRAGMA user_version={schema.version}")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"the {schema.what} {path} is unreadable ({exc})", hint="move it aside to start afresh"
        ) from None
    return have


def add_missing_columns(con: sqlite3.Connection, table: str,
                        columns: tuple[tuple[str, str], ...]) -> None:
    """For a migration from a version-0 database: add each ``(name, declaration)`` the table
    does not have yet (older releases added them one by one, so any subset may be there)."""
    have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns:
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def run_script(con: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (``executescript`` would
    commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            con.execute(statement)
