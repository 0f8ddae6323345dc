"""Site-to-site copies and moves (backend.relay) between two real in-process SFTP servers:
byte-for-byte trees, staging always emptied, a failing second leg keeps the source, a move
deletes only after both legs succeeded, same-folder copies refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from backend import ssh
from backend.audit import AuditLog
from backend.demo.server import start_sftp_server
from backend.errors import UsageError
from backend.relay import RelayProgress, RelaySpec, relay_copy, relay_move, relay_root
from backend.transfers import Journal, TransferEngine
from tests.servers import InProcessServer
from tests.transfer_helpers import FAST_RETRY, tree, write_random


class LockedFolder(asyncssh.SFTPServer):
    """Refuses to open any file for writing under /locked (an unwritable destination)."""

    def open(self, path, pflags, attrs):
        if pflags & asyncssh.FXF_WRITE and b"/locked" in path:
            raise asyncssh.SFTPPermissionDenied("permission denied (injected)")
        return super().open(path, pflags, attrs)


@contextlib.asynccontextmanager
async def second_server(tmp_path: Path, host_key, first: InProcessServer,
                        factory=None) -> AsyncIterator[InProcessServer]:
    """Server B, rooted in its own folder, accepting the same client key as server A."""
    client_key = asyncssh.read_private_key(first.client_key_path)
    server = await start_sftp_server(tmp_path / "remote-b", host_key=host_key,
                                     authorized_keys=[client_key], sftp_factory=factory)
    try:
        yield InProcessServer(server=server, client_key_path=first.client_key_path)
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def engine_for(a: InProcessServer, b: InProcessServer) -> AsyncIterator[TransferEngine]:
    sites = {"a": lambda: a.site("a"), "b": lambda: b.site("b")}

    async def connect(name: str):
        site = sites[name]()
        return site, await ssh.connect(site)

    engine = TransferEngine(connect, journal=Journal(), audit=AuditLog(), retry=FAST_RETRY)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def make_case(root: Path) -> dict[str, str]:
    write_random(root / "CASE-1" / "scan.dcm", 300_000, seed=1)
    write_random(root / "CASE-1" / "notes.txt", 1200, seed=2)
    write_random(root / "CASE-1" / "series" / "img1.dcm", 70_000, seed=3)
    (root / "CASE-1" / "series" / "empty.bin").write_bytes(b"")
    return tree(root / "CASE-1")


def staging_left() -> list[str]:
    root = relay_root()
    return sorted(os.listdir(root))


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_copy_folder_tree_between_two_sites_byte_for_byte(ferry_home, sftp_server,
                                                                tmp_path, host_key):
    want = make_case(sftp_server.root / "data")
    async with second_server(tmp_path, host_key, sftp_server) as b:
        (b.root / "inbox").mkdir(parents=True)
        seen: list[RelayProgress] = []
        async with engine_for(sftp_server, b) as engine:
            result = await relay_copy(
                engine, RelaySpec("a", ["/data/CASE-1"], "b", "/inbox", recursive=True),
                on_progress=seen.append,
            )
            jobs = {j.id: j for j in engine.jobs()}
    assert result.ok, result
    assert tree(b.root / "inbox" / "CASE-1") == want  # sha256 of every file
    assert (b.root / "inbox" / "CASE-1" / "series" / "empty.bin").stat().st_size == 0
    # nothing written anywhere else on B, and the source is untouched
    assert everything_under(b.root) == [
        "inbox", "inbox/CASE-1", "inbox/CASE-1/notes.txt", "inbox/CASE-1/scan.dcm",
        "inbox/CASE-1/series", "inbox/CASE-1/series/empty.bin", "inbox/CASE-1/series/img1.dcm",
    ]
    assert tree(sftp_server.root / "data" / "CASE-1") == want
    assert staging_left() == []
    # both legs are ordinary engine jobs, reported as they start
    assert [p.phase for p in seen] == ["download", "upload", "done"]
    assert [p.job_id for p in seen[:2]] == [result.download_job, result.upload_job]
    assert jobs[result.download_job].direction == "get" and jobs[result.download_job].site == "a"
    assert jobs[result.upload_job].direction == "put" and jobs[result.upload_job].site == "b"
    assert all(jobs[j].state == "done" for j in (result.download_job, result.upload_job))
    audited = AuditLog().query(event="transfer.file")
    assert len(audited) == 8  # 4 files down, 4 files up, each with its checksum


async def test_failing_second_leg_reports_cleans_staging_and_move_keeps_source(
        ferry_home, sftp_server, tmp_path, host_key):
    want = make_case(sftp_server.root / "data")
    async with second_server(tmp_path, host_key, sftp_server, LockedFolder) as b:
        (b.root / "locked").mkdir(parents=True)
        async with engine_for(sftp_server, b) as engine:
            result = await relay_move(
                engine, RelaySpec("a", ["/data/CASE-1"], "b", "/locked", recursive=True))
    assert result.state == "failed" and not result.ok
    assert result.upload_job is not None
    assert "upload failed" in (result.error or "")
    assert "permission denied" in (result.error or "").lower()
    assert not result.sources_deleted
    assert tree(sftp_server.root / "data" / "CASE-1") == want  # the original stays
    assert staging_left() == []
    assert not [p for p in (b.root / "locked").rglob("*") if p.is_file()]


async def test_move_deletes_the_source_only_after_both_legs_succeed(ferry_home, sftp_server,
                                                                    tmp_path, host_key):
    want = make_case(sftp_server.root / "data")
    async with second_server(tmp_path, host_key, sftp_server) as b:
        seen: list[str] = []
        async with engine_for(sftp_server, b) as engine:

            def progress(p: RelayProgress) -> None:
                seen.append(p.phase)
                if p.phase != "done":  # nothing is deleted while a leg runs
                    assert (sftp_server.root / "data" / "CASE-1").is_dir()

            result = await relay_move(
                engine, RelaySpec("a", ["/data/CASE-1"], "b", "/out", recursive=True),
                on_progress=progress,
            )
    assert result.ok and result.sources_deleted, result
    assert seen == ["download", "upload", "done"]
    assert result.move is not None and len(result.move.deleted) == 4
    assert not (sftp_server.root / "data" / "CASE-1").exists()
    assert (sftp_server.root / "data").is_dir()  # only the moved folder went
    assert tree(b.root / "out" / "CASE-1") == want
    assert staging_left() == []


async def test_missing_source_fails_first_leg_and_uploads_nothing(ferry_home, sftp_server,
                                                                 tmp_path, host_key):
    stale = relay_root() / "999999999-0123456789abcdef"  # left by a process that died
    (stale / "CASE-0").mkdir(parents=True)
    (stale / "CASE-0" / "scan.dcm").write_bytes(b"old")
    async with (second_server(tmp_path, host_key, sftp_server) as b,
                engine_for(sftp_server, b) as engine):
        result = await relay_copy(engine, RelaySpec("a", ["/nope.txt"], "b", "/out"))
    assert result.state == "failed" and result.upload_job is None
    assert "download failed" in (result.error or "")
    assert not (b.root / "out").exists()
    assert staging_left() == []


async def test_same_site_copy_to_another_folder_and_same_folder_refused(ferry_home,
                                                                        sftp_server):
    want = write_random(sftp_server.root / "data" / "report.pdf", 5000, seed=9)
    async with engine_for(sftp_server, sftp_server) as engine:
        result = await relay_copy(engine, RelaySpec("a", ["/data/report.pdf"], "a", "/copy"))
        with pytest.raises(UsageError, match="already in"):
            await relay_copy(engine, RelaySpec("a", ["/data/report.pdf"], "a", "/data"))
        with pytest.raises(UsageError, match="into itself"):
            await relay_copy(engine, RelaySpec("a", ["/data"], "a", "/data/sub", recursive=True))
    assert result.ok
    assert tree(sftp_server.root / "copy") == {"report.pdf": want}
    assert staging_left() == []


async def test_cancelling_the_relay_cancels_its_job_and_removes_staging(
        ferry_home, sftp_server, tmp_path, host_key):
    write_random(sftp_server.root / "data" / "big.bin", 4 * 1024 * 1024, seed=4)
    async with (second_server(tmp_path, host_key, sftp_server) as b,
                engine_for(sftp_server, b) as engine):
        started = asyncio.Event()
        task = asyncio.create_task(relay_copy(
            engine, RelaySpec("a", ["/data/big.bin"], "b", "/out"),
            on_progress=lambda p: started.set() if p.phase == "download" else None,
        ))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        states = [j.state for j in engine.jobs()]
    assert states == ["cancelled"]
    assert staging_left() == []
    assert not (b.root / "out").exists()
