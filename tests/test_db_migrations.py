"""Schema versions of the four SQLite stores (backend/db.py): databases written by the release
before schema versions (tests/fixtures/stores-v0, made by its make_fixtures.py) open with
their data, migrated in place after a backup; a database from a newer Ferry is refused with
one line (exit 3 from the CLI); a failing migration leaves the database as it was."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend import db
from backend.audit import SCHEMA as AUDIT
from backend.audit import AuditLog
from backend.cases.store import SCHEMA as CASES
from backend.cases.store import CaseStore
from backend.errors import ConfigError
from backend.shares.store import SCHEMA as SHARES
from backend.shares.store import SqliteMetadataStore
from backend.transfers.journal import SCHEMA as JOURNAL
from backend.transfers.journal import Journal

FIXTURES = Path(__file__).parent / "fixtures" / "stores-v0"
ROOT = Path(__file__).resolve().parent.parent

STORES = {
    "transfers.sqlite": (JOURNAL, lambda p: Journal(p)),
    "audit.sqlite": (AUDIT, lambda p: AuditLog(p, key_dir=p.parent / "audit-key")),
    "cases.sqlite": (CASES, lambda p: CaseStore(p)),
    "shares.sqlite": (SHARES, lambda p: SqliteMetadataStore(p)),
}


def version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    finally:
        con.close()


@pytest.fixture
def old(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "state")
    return tmp_path / "state"


def test_fixtures_are_the_old_release(old: Path) -> None:
    for name in STORES:
        assert version(old / name) == 0


def test_old_journal_opens_migrated_with_its_jobs(old: Path) -> None:
    path = old / "transfers.sqlite"
    before = rows(path, "files")
    journal = Journal(path)
    jobs = journal.statuses()
    assert [(j.id, j.state, j.site) for j in jobs] == [(1, "done", "pacs"), (2, "queued", "pacs")]
    (f,) = journal.files(1)
    assert (f.dst, f.size, f.sha256, f.verify) == ("/in/a.dcm", 1234, "ab" * 32, "sha256-server")
    assert version(path) == JOURNAL.version
    backup = old / "transfers.sqlite.bak-v0"
    assert version(backup) == 0 and rows(backup, "files") == before
    assert backup.stat().st_mode & 0o777 == 0o600
    journal.add_job(journal.job(2).spec)  # still writable
    journal.close()


def test_old_audit_log_opens_migrated_and_still_verifies(old: Path) -> None:
    path = old / "audit.sqlite"
    log = AuditLog(path, key_dir=old / "audit-key")
    result = log.verify()
    assert result.ok, result.reason
    assert result.rows == 2 and [r.event for r in log.query()] == ["transfer.file",
                                                                   "share.created"]
    assert version(path) == AUDIT.version and version(old / "audit.sqlite.bak-v0") == 0
    log.append("transfer.file", site="pacs", size=1)  # the keyed head goes on from the old end
    assert log.verify().ok and log.verify().rows == 3


def test_old_case_store_opens_migrated_with_its_cases(old: Path) -> None:
    path = old / "cases.sqlite"
    store = CaseStore(path)
    one = store.get("pacs", "CASE-001")
    assert one is not None
    assert (one.state, one.size, one.verified_by, one.job_id, one.dirs()) == (
        "sent", 999, "sha256-server", 1, ["/in/CASE-001"])
    assert [c.case_id for c in store.list("pacs")] == ["CASE-001", "CASE-002"]
    assert store.previous_signature("pacs", "CASE-002") == "sig-1"
    assert version(path) == CASES.version and version(old / "cases.sqlite.bak-v0") == 0


def test_old_share_store_opens_migrated_with_its_shares(old: Path) -> None:
    path = old / "shares.sqlite"
    store = SqliteMetadataStore(path)
    share = store.get_share("sh1")
    assert share is not None
    assert (share.name, share.sender, share.max_downloads) == ("report.pdf", "alice", 3)
    assert share.created_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert [r.email for r in share.recipients] == ["bob@example.org"]
    assert store.wrapped_key("sh1") == b"wrapped-key-bytes"
    assert version(path) == SHARES.version and version(old / "shares.sqlite.bak-v0") == 0
    store.close()


def test_case_store_from_before_journaled_sends_gets_its_columns(tmp_path: Path) -> None:
    """The case store's old "add the column if missing" code is now its migration 2."""
    path = tmp_path / "cases.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE cases (site TEXT NOT NULL, case_id TEXT NOT NULL, layout TEXT NOT NULL"
        " DEFAULT '', state TEXT NOT NULL, source TEXT, remote_path TEXT, sha256 TEXT, size"
        " INTEGER, sent_at TEXT, ready_at TEXT, downloaded_at TEXT, archived_at TEXT,"
        " archive_path TEXT, result_path TEXT, local_path TEXT, report_path TEXT, result_files"
        " TEXT, updated_at TEXT NOT NULL, verified_by TEXT, PRIMARY KEY (site, case_id));"
        "INSERT INTO cases (site, case_id, state, updated_at) VALUES ('pacs', 'OLD', 'sent', 't');"
    )
    con.close()
    store = CaseStore(path)
    record = store.upsert("pacs", "OLD", job_id=7, note="n", deidentified="yes")
    assert (record.state, record.job_id, record.deidentified) == ("sent", 7, "yes")
    assert version(path) == CASES.version


def test_new_databases_start_at_the_latest_version_without_a_backup(tmp_path: Path) -> None:
    for name, (schema, opener) in STORES.items():
        path = tmp_path / name
        opener(path)
        assert version(path) == schema.version
        assert not list(tmp_path.glob("*.bak-v*"))
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", list(STORES))
def test_a_database_from_a_newer_ferry_is_refused(old: Path, name: str) -> None:
    schema, opener = STORES[name]
    path = old / name
    opener(path)
    # a dropped store's connection closes only when the garbage collector runs (CPython 3.11's
    # sqlite3 connection is in a cycle with its statement cache); while it is open the change
    # below stays in the WAL, and whenever it closed later that checkpoint rewrote the file
    gc.collect()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={schema.version + 1}")
    con.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError) as err:
        opener(path)
    message = str(err.value)
    assert "written by a newer Ferry" in message and str(path) in message
    assert f"schema version {schema.version + 1}" in message and "\n" not in message
    assert err.value.exit_code == 3
    assert path.read_bytes() == before


def test_the_cli_refuses_a_newer_queue_with_one_line_and_exit_3(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "state").mkdir(parents=True)
    path = home / "state" / "transfers.sqlite"
    shutil.copy(FIXTURES / "transfers.sqlite", path)
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={JOURNAL.version + 5}")
    con.close()
    env = {"PATH": "/usr/bin:/bin", "FERRY_HOME": str(home), "PYTHONPATH": str(ROOT),
           "CI": "1", "FERRY_NO_AGENT": "1", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "from tui.cli import main; main()",
                             "queue", "list"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "written by a newer Ferry" in lines[0], result.stderr


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    con.close()

    def add_b(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE t ADD COLUMN b TEXT")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("UPDATE t SET a = 2")
        raise RuntimeError("migration bug")

    schema = db.Schema("test store", (lambda c: None, add_b, broken))
    con = db.connect(path, schema.what)
    with pytest.raises(RuntimeError):
        db.open_schema(con, path, schema)
    con.close()
    assert version(path) == 0 and rows(path, "t") == [(1,)]
    assert version(path.with_name("x.sqlite.bak-v0")) == 0
