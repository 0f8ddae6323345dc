"""The audit log: appends chain, queries filter, and any edit or deletion is caught."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from backend.audit import AuditLog
from tui.cli import run


def _log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.sqlite")
    log.append("share.created", share="s1", size=10)
    log.append("transfer.done", site="pacs", direction="upload", sha256="ab" * 32)
    log.append("share.downloaded", share="s1", recipient="a@example.org")
    return log


def test_append_and_query_filters(tmp_path: Path) -> None:
    log = _log(tmp_path)
    assert [r.event for r in log.query(event="share.*")] == ["share.created", "share.downloaded"]
    assert [r.id for r in log.query(since=1)] == [2, 3]
    assert [r.event for r in log.query(limit=1)] == ["share.downloaded"]
    assert [r.id for r in log.query(text="PACS")] == [2]
    assert log.verify().ok and log.verify().rows == 3


def test_verify_catches_an_edited_row(tmp_path: Path) -> None:
    log = _log(tmp_path)
    con = sqlite3.connect(tmp_path / "audit.sqlite")
    con.execute("UPDATE audit SET fields=? WHERE id=2", (json.dumps({"site": "elsewhere"}),))
    con.commit()
    con.close()
    result = log.verify()
    assert not result.ok and result.first_bad_id == 2 and "modified" in result.reason


def test_verify_catches_a_deleted_row(tmp_path: Path) -> None:
    log = _log(tmp_path)
    con = sqlite3.connect(tmp_path / "audit.sqlite")
    con.execute("DELETE FROM audit WHERE id=2")
    con.commit()
    con.close()
    result = log.verify()
    assert not result.ok and result.first_bad_id == 2


def test_verify_catches_a_deleted_last_row(tmp_path: Path) -> None:
    log = _log(tmp_path)
    con = sqlite3.connect(tmp_path / "audit.sqlite")
    con.execute("DELETE FROM audit WHERE id=3")
    con.commit()
    con.close()
    assert not log.verify().ok


def test_export_csv_neutralises_formulas(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.append("share.created", name="=HYPERLINK(\"x\")")
    buf = io.StringIO()
    assert log.export_csv(buf) == 4
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[1]["site"] == "pacs"
    assert rows[3]["name"].startswith("'=")


def test_cli_verify_exit_codes(ferry_home: Path, capsys) -> None:
    log = AuditLog()
    log.append("share.created", share="s1")
    log.append("share.revoked", share="s1")
    assert run(["audit", "verify"]) == 0
    con = sqlite3.connect(log.path)
    con.execute("UPDATE audit SET event='share.nothing' WHERE id=1")
    con.commit()
    con.close()
    assert run(["audit", "verify"]) == 12
    assert "row 1" in capsys.readouterr().err


def test_cli_list_and_export(ferry_home: Path, tmp_path: Path, capsys) -> None:
    log = AuditLog()
    log.append("share.created", share="s1")
    log.append("transfer.done", site="pacs")
    assert run(["audit", "list", "--json", "--event", "transfer.done"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["event"] for r in data] == ["transfer.done"]
    out = tmp_path / "audit.csv"
    assert run(["audit", "export", "--csv", "-o", str(out)]) == 0
    assert "transfer.done" in out.read_text()
