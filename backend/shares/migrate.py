"""``ferry serve migrate``: move an embedded share service (SQLite + blob folder + the local
audit log) to PostgreSQL + an S3-compatible store.

What moves: every share that can still be downloaded (active, exhausted-but-not-purged,
broken) with its recipients, counters and wrapped key, and its blob (the encrypted bytes are
copied as they are: nothing is decrypted, the server key stays the same); the records of
purged, revoked and expired shares (no blob, no key); and the whole audit chain, rows copied
with their ids, times and hashes, so it verifies in PostgreSQL exactly as it did locally.
Then one ``audit.migrated`` row is chained after them.

Refused before anything is written: a local chain that does not verify, a target database
that already holds shares or audit rows, a blob the folder store lost (listed, never
skipped silently). The service must be stopped while it runs (it checks the service file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from backend.audit import AuditLog
from backend.errors import ConfigError, ShareError
from backend.shares.backends import Backends
from backend.shares.blobs import FileBlobStore
from backend.shares.store import SqliteMetadataStore

COPY_CHUNK = 4 * 1024 * 1024


@dataclass
class MigrationReport:
    shares: int = 0
    recipients: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    records_only: int = 0
    audit_rows: int = 0
    audit_verified: bool = False
    missing_blobs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _service_running() -> int | None:
    from backend.shares.server import service_info_file

    try:
        info = json.loads(service_info_file().read_text())
        pid = int(info.get("pid", 0))
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def migrate_embedded(target: Backends, *, source_store: SqliteMetadataStore | None = None,
                     source_blobs: FileBlobStore | None = None,
                     source_audit: AuditLog | None = None) -> MigrationReport:
    pid = _service_running()
    if pid is not None and pid != os.getpid():
        raise ShareError(f"the embedded share service is running (pid {pid})",
                         hint="stop 'ferry serve' first, then migrate")
    store = source_store or SqliteMetadataStore()
    blobs = source_blobs or FileBlobStore()
    audit = source_audit or AuditLog()
    report = MigrationReport()

    checked = audit.verify()
    if not checked.ok:
        raise ConfigError(f"the local audit log does not verify ({checked.kind}: "
                          f"{checked.reason}); nothing was migrated",
                          hint="see 'ferry audit verify'")
    have = target.store._exec("SELECT (SELECT count(*) FROM shares),"
                              " (SELECT count(*) FROM audit)")[0]
    if have[0] or have[1]:
        raise ConfigError(f"the target database already holds {have[0]} shares and {have[1]}"
                          " audit rows; migrate into an empty database",
                          hint="create a new database for the migration")

    shares = store.list_shares()
    live = []
    for share in shares:
        if share.purged_at is None and not blobs.exists(share.blob_id):
            report.missing_blobs.append(share.id)
        live.append(share)
    if report.missing_blobs:
        raise ShareError(
            f"{len(report.missing_blobs)} share(s) have no blob in the folder store "
            f"({', '.join(report.missing_blobs[:5])}); nothing was migrated",
            hint="revoke them ('ferry share revoke ID') or restore the files, then migrate",
        )

    # blobs first: a share row never points at an object that is not there
    copied: list[str] = []
    try:
        for share in live:
            if share.purged_at is not None:
                continue
            with blobs.open(share.blob_id) as src:
                writer = target.blobs.new_writer(share.blob_id)
                try:
                    while True:
                        chunk = src.read(COPY_CHUNK)
                        if not chunk:
                            break
                        writer.write(chunk)
                        report.blob_bytes += len(chunk)
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
            copied.append(share.blob_id)
            report.blobs += 1
        for share in live:
            # a purged share's key is already destroyed (None): it stays NULL
            target.store.add_share(share, store.wrapped_key(share.id))
            _copy_counters(store, target, share.id)
            report.shares += 1
            report.recipients += len(share.recipients)
            if share.purged_at is not None:
                report.records_only += 1
        rows = [tuple(r) for r in _local_rows(audit)]
        target.audit.append_rows([], keep=rows)
        report.audit_rows = len(rows)
        target.audit.append("audit.migrated", actor="ferry", rows=len(rows),
                            last_hash=checked.last_hash, shares=report.shares)
    except BaseException:
        for blob_id in copied:  # leave the target as empty as it was
            try:
                target.blobs.delete(blob_id)
            except Exception:  # noqa: S112 - best effort; the report says what was copied
                continue
        target.store._exec("DELETE FROM recipients")
        target.store._exec("DELETE FROM shares")
        target.store._exec("DELETE FROM audit")
        target.store._exec("DELETE FROM audit_head")
        raise
    result = target.audit.verify()
    report.audit_verified = result.ok
    if not result.ok:
        raise ConfigError(f"the migrated audit chain does not verify: {result.reason}")
    return report


def _local_rows(audit: AuditLog) -> list[tuple[Any, ...]]:
    import sqlite3

    con = sqlite3.connect(audit.path)
    try:
        return con.execute("SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit"
                           " ORDER BY id").fetchall()
    finally:
        con.close()


def _copy_counters(store: SqliteMetadataStore, target: Backends, share_id: str) -> None:
    """The accounting columns ``Recipient`` does not carry (delivered prefix, reset times)."""
    rows = store._query(
        "SELECT id, delivered_prefix, failures_reset_at FROM recipients WHERE share_id=?",
        (share_id,),
    )
    from backend.shares.store import _dt

    for rid, prefix, reset in rows:
        target.store._exec(
            "UPDATE recipients SET delivered_prefix = %s, failures_reset_at = %s WHERE id = %s",
            (int(prefix or 0), _dt(reset), rid),
        )
