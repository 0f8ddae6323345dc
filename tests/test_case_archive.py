"""Archiving moves exactly what the preview listed, by rename, into <archive>/<year>/.

Nothing is ever deleted or overwritten."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backend import ssh
from backend.audit import AuditLog
from backend.cases import archive, list_cases, parse_age, plan_archive
from backend.cases.store import ARCHIVED, CaseStore
from backend.demo.samples import populate
from backend.demo.server import start_sftp_server
from backend.errors import ConfigError, UsageError
from tests import case_helpers
from tests.case_helpers import snapshot
from tests.hostile import HostileSFTPServer
from tests.servers import InProcessServer, write_private_key

case_server = case_helpers.case_server  # the fixture: in-process server and sshd


def age(path: Path, days: float) -> float:
    when = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (when, when), follow_symlinks=False)
    return when


async def test_archive_moves_exactly_the_preview_and_deletes_nothing(case_server) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    inbox = base / "idt" / "From_IDT"
    old = age(inbox / "CASE-20261118-0031", 40)
    age(inbox / "CASE-20261119-0032", 35)
    site = case_server.site("arch", "inbox-outbox", "site/idt")
    before = snapshot(base / "idt")

    async with ssh.sftp_session(site) as (_c, sftp):
        preview = await archive(site, sftp, older_than=parse_age("30d"), dry_run=True)
        assert snapshot(base / "idt") == before, "a dry run changes nothing"
        result = await archive(site, sftp, plan=preview.plan)
        states = {c.case_id: c.state for c in await list_cases(site, sftp)}

    year = time.localtime(old).tm_year
    assert [m.case_id for m in preview.plan.moves] == ["CASE-20261118-0031", "CASE-20261119-0032"]
    assert result.moved == preview.plan.moves
    after = snapshot(base / "idt")
    renamed = {
        k.replace("From_IDT/", f"Old_Cases/{year}/", 1)
        if k.startswith(("From_IDT/CASE-20261118-0031/", "From_IDT/CASE-20261119-0032/")) else k: v
        for k, v in before.items()
    }
    assert after == renamed, "every file is still there, byte for byte, only moved"
    assert not (inbox / "CASE-20261118-0031").exists()
    assert states["CASE-20261118-0031"] == ARCHIVED
    events = [r for r in AuditLog().query(event="case.archived")]
    assert [r.fields["case"] for r in events] == ["CASE-20261118-0031", "CASE-20261119-0032"]


async def test_an_existing_destination_is_refused_not_overwritten(case_server) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    when = age(base / "idt" / "From_IDT" / "CASE-20261118-0031", 3)
    clash = base / "idt" / "Old_Cases" / str(time.localtime(when).tm_year) / "CASE-20261118-0031"
    clash.mkdir(parents=True)
    (clash / "keep.txt").write_text("already archived once")
    site = case_server.site("arch", "inbox-outbox", "site/idt")
    async with ssh.sftp_session(site) as (_c, sftp):
        result = await archive(site, sftp, ["CASE-20261118-0031", "CASE-20261119-0032"])
    assert [m.case_id for m in result.moved] == ["CASE-20261119-0032"]
    assert any("already exists" in r for r in result.plan.refused)
    assert (clash / "keep.txt").read_text() == "already archived once"
    assert (base / "idt" / "From_IDT" / "CASE-20261118-0031" / "report.txt").exists()


async def test_unknown_case_and_missing_selection_are_one_line_errors(case_server) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("arch", "inbox-outbox", "site/idt")
    async with ssh.sftp_session(site) as (_c, sftp):
        with pytest.raises(ConfigError, match="no case 'NOPE'"):
            await plan_archive(site, sftp, ["NOPE"])
        with pytest.raises(UsageError, match="--older-than"):
            await plan_archive(site, sftp)
    assert CaseStore().list("arch") == []


def test_durations() -> None:
    assert parse_age("30d") == 30 * 86400
    assert parse_age("12h") == 12 * 3600
    assert parse_age("2w") == 14 * 86400
    with pytest.raises(UsageError):
        parse_age("soon")


async def test_hostile_names_in_the_inbox_are_reported_not_moved(
    tmp_path, host_key, client_key, ferry_home
) -> None:
    key_path = write_private_key(client_key, tmp_path / "id_h")
    server = await start_sftp_server(
        tmp_path / "hostile", host_key=host_key, authorized_keys=[client_key],
        sftp_factory=HostileSFTPServer,
    )
    try:
        hostile = InProcessServer(server=server, client_key_path=key_path)
        populate(hostile.root, large_file_mib=1)
        site = hostile.site("h", layout="inbox-outbox", remote_dir="/idt")
        async with ssh.sftp_session(site) as (_c, sftp):
            plan = await plan_archive(site, sftp, older_than=0)
    finally:
        server.close()
    assert {m.case_id for m in plan.moves} == {
        "CASE-20261118-0031", "CASE-20261119-0032", "CASE-20261120-0033", "CASE-20261121-0034"
    }
    assert any("unsafe remote name" in r for r in plan.refused)
    assert all("\x1b" not in r for r in plan.refused)
