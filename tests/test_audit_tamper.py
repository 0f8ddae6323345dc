"""The audit log against an attacker who can write the database (and the state folder): cut
rows off the end, wipe the table, recompute the chain after a rewrite, smuggle a duplicate
JSON key, add rows, or (with the key) truncate below an anchor kept elsewhere. Each must make
``ferry audit verify`` exit 12 with a line saying what happened; an untouched log, a log from
before keyed heads and concurrent appends from several processes must keep verifying.

The attacker's tools are those of anyone with the files: sqlite3, ``rm``, and the published
chain formula (``backend.audit.row_hash``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.audit import AuditLog, row_hash
from tui.cli import run

ROWS = 10


def _filled(n: int = ROWS) -> AuditLog:
    log = AuditLog()
    for i in range(1, n + 1):
        log.append("share.downloaded", share=f"s{i}", recipient=f"r{i}@example.org", size=i)
    return log


def _sql(log: AuditLog, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(log.path)
    for sql, args in statements:
        con.execute(sql, args)
    con.commit()
    con.close()


def _rows(log: AuditLog) -> list[tuple]:
    con = sqlite3.connect(log.path)
    rows = con.execute(
        "SELECT id, ts, event, actor, fields, prev_hash, hash FROM audit ORDER BY id"
    ).fetchall()
    con.close()
    return rows


def _truncate(log: AuditLog, keep: int) -> None:
    """Delete every row after ``keep`` and reset SQLite's id counter to match."""
    _sql(log, ("DELETE FROM audit WHERE id > ?", (keep,)),
         ("UPDATE sqlite_sequence SET seq=? WHERE name='audit'", (keep,)))


def _delete_heads(log: AuditLog) -> None:
    """Remove every head file there is: the unkeyed one beside the database and the keyed one."""
    for path in (log.head_path, getattr(getattr(log, "keyed", None), "head_path", None)):
        if path is not None and Path(path).exists():
            Path(path).unlink()


def _rechain(log: AuditLog, rows: list[tuple]) -> None:
    """Rewrite the whole table from ``rows`` (id, ts, event, actor, fields), recomputing every
    hash, as an attacker who knows the formula would; fix the counter and the unkeyed head."""
    prev = "0" * 64
    out = []
    for row_id, ts, event, actor, fields in rows:
        digest = row_hash(prev, row_id, ts, event, actor, fields)
        out.append((row_id, ts, event, actor, fields, prev, digest))
        prev = digest
    con = sqlite3.connect(log.path)
    con.execute("DELETE FROM audit")
    con.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?)", out)
    con.execute("UPDATE sqlite_sequence SET seq=? WHERE name='audit'", (out[-1][0],))
    con.commit()
    con.close()
    log.head_path.write_text(f"{out[-1][0]} {prev}\n")


def _verify_fails(capsys, *extra: str) -> str:
    capsys.readouterr()
    assert run(["audit", "verify", *extra]) == 12
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_untouched_log_verifies(ferry_home: Path, capsys) -> None:
    _filled()
    assert run(["audit", "verify"]) == 0
    assert f"{ROWS} rows" in capsys.readouterr().out
    assert run(["audit", "verify", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["kind"] == "ok" and data["rows"] == ROWS


def test_truncated_tail_with_the_head_deleted_fails(ferry_home: Path, capsys) -> None:
    log = _filled()
    _truncate(log, 7)
    _delete_heads(log)
    err = _verify_fails(capsys)
    assert "(head-missing)" in err and "rows may have been deleted" in err


def test_truncated_tail_with_the_keyed_head_kept_names_the_missing_rows(ferry_home: Path,
                                                                        capsys) -> None:
    log = _filled()
    _truncate(log, 7)
    log.head_path.unlink(missing_ok=True)
    err = _verify_fails(capsys)
    assert "(truncated)" in err and "rows 8..10" in err


def test_wiped_table_with_the_head_deleted_fails(ferry_home: Path, capsys) -> None:
    log = _filled()
    _sql(log, ("DELETE FROM audit", ()), ("DELETE FROM sqlite_sequence", ()))
    _delete_heads(log)
    _verify_fails(capsys)
    assert not log.verify().ok


def test_wiped_table_with_the_keyed_head_kept_says_wiped(ferry_home: Path, capsys) -> None:
    log = _filled()
    _sql(log, ("DELETE FROM audit", ()), ("DELETE FROM sqlite_sequence", ()))
    log.head_path.unlink(missing_ok=True)
    err = _verify_fails(capsys)
    assert "(wiped)" in err and f"records {ROWS} rows" in err


def test_duplicate_json_key_is_refused(ferry_home: Path, capsys) -> None:
    log = _filled()
    # A reader that takes the first value (SQLite's json_extract) sees "forged"; Python's json
    # takes the last, so the row hashes exactly as before.
    forged = ('{"recipient":"forged@evil.example","recipient":"r2@example.org",'
              '"share":"s2","size":2}')
    _sql(log, ("UPDATE audit SET fields=? WHERE id=2", (forged,)))
    con = sqlite3.connect(log.path)
    assert con.execute("SELECT json_extract(fields, '$.recipient') FROM audit WHERE id=2"
                       ).fetchone()[0] == "forged@evil.example"
    con.close()
    err = _verify_fails(capsys)
    assert "row 2" in err and "duplicate key 'recipient'" in err
    assert "forged@evil.example" not in str(log.query(since=1, limit=1)[0].fields.get("recipient"))


def test_non_canonical_fields_are_refused(ferry_home: Path, capsys) -> None:
    log = _filled()
    rows = [r[:5] for r in _rows(log)]
    rows[3] = (*rows[3][:4], json.dumps(json.loads(rows[3][4]), indent=1))  # same object
    _rechain(log, rows)
    err = _verify_fails(capsys)
    assert "row 4" in err and "canonical" in err


def test_rewritten_middle_row_with_the_chain_recomputed_fails(ferry_home: Path, capsys) -> None:
    log = _filled()
    rows = [r[:5] for r in _rows(log)]
    fields = json.loads(rows[4][4])
    fields["recipient"] = "someone-else@example.org"
    rows[4] = (*rows[4][:4], json.dumps(fields, sort_keys=True, separators=(",", ":")))
    _rechain(log, rows)
    err = _verify_fails(capsys)
    assert "(rewritten)" in err


def test_middle_rows_deleted_and_renumbered_fail(ferry_home: Path, capsys) -> None:
    log = _filled()
    kept = [r[:5] for r in _rows(log) if r[0] not in (4, 5)]
    _rechain(log, [(i, *r[1:]) for i, r in enumerate(kept, 1)])
    err = _verify_fails(capsys)
    assert "(truncated)" in err and "records 10 rows, the table has 8" in err


def test_middle_row_deleted_names_it(ferry_home: Path, capsys) -> None:
    log = _filled()
    _sql(log, ("DELETE FROM audit WHERE id=5", ()))
    err = _verify_fails(capsys)
    assert "row 5 is missing" in err and "(deleted)" in err


def test_rows_added_outside_ferry_fail(ferry_home: Path, capsys) -> None:
    log = _filled()
    rows = [r[:5] for r in _rows(log)]
    rows.append((ROWS + 1, rows[-1][1], "share.created", "mallory", '{"share":"fake"}'))
    _rechain(log, rows)
    err = _verify_fails(capsys)
    assert "(appended)" in err and "rows 11..11" in err


def test_an_append_after_tampering_does_not_hide_it(ferry_home: Path, capsys) -> None:
    """Ferry keeps writing (the share service does) after someone cut the tail: the next
    append must not sign over the truncation."""
    log = _filled()
    _truncate(log, 6)
    _delete_heads(log)
    AuditLog().append("share.created", share="after")
    err = _verify_fails(capsys)
    assert "(tamper-recorded)" in err and "head was missing" in err


def test_forged_head_fails(ferry_home: Path, capsys) -> None:
    log = _filled()
    text = log.keyed.head_path.read_text().split(" ")
    text[-1] = "0" * 64 + "\n"
    log.keyed.head_path.write_text(" ".join(text))
    assert "(head-invalid)" in _verify_fails(capsys)


def test_anchor_then_truncate_below_it_with_the_key_fails(ferry_home: Path, tmp_path: Path,
                                                          capsys) -> None:
    """Someone who has the key can re-sign the head after truncating; the anchor kept on
    another mount still shows the rows are gone."""
    anchors = tmp_path / "elsewhere" / "ferry-audit.anchors"
    anchors.parent.mkdir()
    log = _filled()
    assert run(["audit", "anchor", "--to", str(anchors)]) == 0
    log.append("share.revoked", share="s1")
    assert run(["audit", "anchor", "--to", str(anchors)]) == 0
    assert len(anchors.read_text().splitlines()) == 2
    assert anchors.stat().st_mode & 0o777 == 0o600
    assert run(["audit", "verify", "--anchor", str(anchors)]) == 0
    assert "2 anchors" in capsys.readouterr().out

    from backend.audit_head import ChainState

    _truncate(log, 6)
    key = log.keyed.load_key()
    assert key is not None
    log.keyed.reset(key, ChainState(6, _rows(log)[-1][6]))  # the attacker re-signs the head
    assert run(["audit", "verify"]) == 0  # without the anchor nothing shows it
    err = _verify_fails(capsys, "--anchor", str(anchors))
    assert "(anchor)" in err and "truncated below an anchor" in err and "line 1" in err


def test_anchor_refuses_a_tampered_log(ferry_home: Path, tmp_path: Path, capsys) -> None:
    log = _filled()
    _truncate(log, 5)
    anchors = tmp_path / "anchors"
    assert run(["audit", "anchor", "--to", str(anchors)]) == 12
    assert not anchors.exists()


def test_verify_with_an_unreadable_anchor_file_is_a_usage_error(ferry_home: Path,
                                                               tmp_path: Path, capsys) -> None:
    _filled(2)
    assert run(["audit", "verify", "--anchor", str(tmp_path / "none")]) == 2
    assert "cannot read the anchor file" in capsys.readouterr().err


def test_a_log_from_before_keyed_heads_is_upgraded(ferry_home: Path, capsys) -> None:
    log = _filled()
    # what the previous release left: rows, an unkeyed "ID HASH" head beside them, no key
    last = _rows(log)[-1]
    import shutil

    shutil.rmtree(log.keyed.dir)
    log.head_path.write_text(f"{last[0]} {last[6]}\n")

    assert run(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "upgraded to a keyed head" in out
    assert [r.fields for r in AuditLog().query(event="audit.head_keyed")] == [
        {"rows": ROWS, "unkeyed_head": True}]
    assert log.keyed.key_path.stat().st_mode & 0o777 == 0o600
    assert not log.head_path.exists()
    _truncate(AuditLog(), 8)
    _verify_fails(capsys)


def test_a_log_from_before_keyed_heads_truncated_before_the_upgrade_fails(ferry_home: Path,
                                                                          capsys) -> None:
    log = _filled()
    import shutil

    shutil.rmtree(log.keyed.dir)
    _truncate(log, 7)
    log.head_path.unlink(missing_ok=True)
    err = _verify_fails(capsys)
    assert "(tamper-recorded)" in err and "no head" in err


def test_an_interrupted_append_still_verifies(ferry_home: Path, capsys) -> None:
    """A crash after the head recorded the coming rows but before the commit."""
    from backend.audit_head import ChainState

    log = _filled(3)
    last = _rows(log)[-1]
    key = log.keyed.load_key()
    assert key is not None
    log.keyed.begin(key, ChainState(3, last[6]), ChainState(5, "ab" * 32))
    assert run(["audit", "verify"]) == 0
    assert "interrupted" in capsys.readouterr().out
    log.append("share.created", share="next")
    assert log.verify().ok and log.verify().rows == 4


_WRITER = """
import sys
from backend.audit import AuditLog
log = AuditLog()
for i in range(int(sys.argv[2])):
    log.append("transfer.file", writer=sys.argv[1], n=i)
"""


@pytest.mark.timeout(180)
def test_concurrent_appends_from_several_processes_verify(ferry_home: Path) -> None:
    """4 processes x 50 appends, verify running meanwhile: no false alarm, no lost row."""
    AuditLog().append("share.created", share="first")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, f"w{w}", "50"], env=env)
        for w in range(4)
    ]
    checks = 0
    while any(p.poll() is None for p in procs):
        result = AuditLog().verify()
        assert result.ok, result.reason
        checks += 1
        time.sleep(0.05)
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    result = AuditLog().verify()
    assert result.ok and result.rows == 201, result.reason
    assert checks >= 1
    rows = AuditLog().query(event="transfer.file")
    assert sorted((r.fields["writer"], r.fields["n"]) for r in rows) == sorted(
        (f"w{w}", i) for w in range(4) for i in range(50))
