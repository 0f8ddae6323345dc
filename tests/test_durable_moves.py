"""Moves as journaled jobs (issue 14, "durable moves"): the originals are deleted by whichever
process finishes the job, only for files whose copy is done and verified, across ``kill -9``.

* ``ferry put --move`` / ``ferry get --move`` killed mid-file, then ``ferry queue resume``:
  the destination is complete and verified, the original is gone;
* a file whose copy fails keeps its original (and its folder), the others are moved;
* a site-to-site ``ferry mv`` killed mid-download completes through ``ferry queue resume``;
* a cancelled move keeps every original.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import asyncssh

from backend.audit import AuditLog
from backend.demo.server import start_sftp_server
from backend.relay import relay_root
from backend.sites.store import SiteStore
from backend.transfers import JobSpec, Journal
from backend.transfers.moves import TAG
from tests.proxies import Proxy
from tests.servers import InProcessServer
from tests.transfer_helpers import make_engine, sha256_of, write_random

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def ferry_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tui.cli import main; main()", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}


async def ferry(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ferry_cmd(*args), env=env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def until(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def kill_when_checkpointed(*args: str, past: int = MiB) -> None:
    """Start ``ferry ARGS`` and kill -9 it once a file of its first job is past ``past``."""
    proc = await asyncio.create_subprocess_exec(
        *ferry_cmd(*args), env=env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    journal = Journal()

    def checkpointed() -> bool:
        jobs = journal.job_rows()
        return bool(jobs) and any(f.offset > past for f in journal.files(jobs[0].id))

    try:
        await until(checkpointed, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def test_kill_9_mid_put_move_then_queue_resume_completes_the_move(
        ferry_home, sftp_server, tmp_path):
    source = tmp_path / "study" / "volume.raw"
    want = write_random(source, 6 * MiB, seed=11)
    (sftp_server.root / "inbox").mkdir(parents=True)
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        SiteStore().add(sftp_server.site("lab", port=proxy.port))
        await kill_when_checkpointed("put", "--move", str(source), "lab:/inbox/")
        (job,) = Journal().job_rows()
        assert job.state == "running" and job.spec.tag == TAG  # what the kill left
        assert source.exists()  # a half-copied move keeps its original
        assert not (sftp_server.root / "inbox" / "volume.raw").exists()
        proxy.rate = None
        code, out, err = await ferry("queue", "resume")
    assert code == 0, err
    assert sha256_of(sftp_server.root / "inbox" / "volume.raw") == want
    assert not source.exists()  # deleted by the process that finished the job
    assert "1 original(s) deleted after a verified copy" in err
    assert "volume.raw" in out and "sha256" in out
    (audited,) = AuditLog().query(event="transfer.move")
    assert audited.fields["deleted"] == 1 and audited.fields["complete"] is True


async def test_kill_9_mid_get_move_then_queue_resume_deletes_the_remote_original(
        ferry_home, sftp_server, tmp_path):
    want = write_random(sftp_server.root / "outbox" / "CASE-1" / "scan.dcm", 6 * MiB, seed=12)
    write_random(sftp_server.root / "outbox" / "CASE-1" / "notes.txt", 300, seed=13)
    local = tmp_path / "cases"
    local.mkdir()
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        SiteStore().add(sftp_server.site("lab", port=proxy.port))
        await kill_when_checkpointed("get", "--move", "-r", "lab:/outbox/CASE-1", str(local))
        assert (sftp_server.root / "outbox" / "CASE-1" / "scan.dcm").exists()
        proxy.rate = None
        code, _out, err = await ferry("queue", "resume", "--json")
    assert code == 0, err
    assert sha256_of(local / "CASE-1" / "scan.dcm") == want
    assert (local / "CASE-1" / "notes.txt").stat().st_size == 300
    assert not (sftp_server.root / "outbox" / "CASE-1").exists()  # files and folder gone
    assert (sftp_server.root / "outbox").is_dir()  # only what was moved


class LockedName(asyncssh.SFTPServer):
    """Refuses to write any file named ``locked.bin`` (one destination that cannot be written)."""

    def open(self, path, pflags, attrs):
        if pflags & asyncssh.FXF_WRITE and b"locked.bin" in path:
            raise asyncssh.SFTPPermissionDenied("permission denied (injected)")
        return super().open(path, pflags, attrs)


async def test_a_move_whose_file_fails_keeps_that_original_and_its_folder(
        ferry_home, sftp_server, tmp_path, host_key):
    client_key = asyncssh.read_private_key(sftp_server.client_key_path)
    server = await start_sftp_server(tmp_path / "remote-locked", host_key=host_key,
                                     authorized_keys=[client_key], sftp_factory=LockedName)
    served = InProcessServer(server=server, client_key_path=sftp_server.client_key_path)
    case = tmp_path / "CASE-2"
    write_random(case / "ok.dcm", 40_000, seed=1)
    locked = write_random(case / "sub" / "locked.bin", 50_000, seed=2)
    (served.root / "in").mkdir(parents=True)
    engine = make_engine(lambda: served.site("lab"))
    await engine.start()
    try:
        job = await engine.submit(JobSpec("put", "lab", [str(case)], "/in/", recursive=True,
                                          tag=TAG))
        status = await engine.wait(job)
        notes = engine.notes(job)
    finally:
        await engine.stop()
        server.close()
        await server.wait_closed()
    assert status.state == "failed" and status.files_failed == 1
    assert (served.root / "in" / "CASE-2" / "ok.dcm").exists()
    assert not (case / "ok.dcm").exists()  # moved: copied and verified
    assert sha256_of(case / "sub" / "locked.bin") == locked  # its copy failed: kept
    assert case.is_dir()  # not empty, so it stays
    note = notes[-1]
    assert "1 original(s) deleted" in note
    assert "locked.bin (the copy failed:" in note and "permission denied" in note
    assert "CASE-2 (not empty" in note


async def test_a_cancelled_move_keeps_every_original(ferry_home, sftp_server, tmp_path):
    source = tmp_path / "big.bin"
    want = write_random(source, 4 * MiB, seed=5)
    with Proxy(sftp_server.port, rate=500_000) as proxy:
        engine = make_engine(lambda: sftp_server.site("lab", port=proxy.port))
        await engine.start()
        try:
            job = await engine.submit(JobSpec("put", "lab", [str(source)], "/big.bin", tag=TAG))
            await until(lambda: any(f.offset > 0 for f in Journal().files(job)), 30)
            await engine.cancel(job)
            notes = engine.notes(job)
        finally:
            await engine.stop()
    assert sha256_of(source) == want
    assert not (sftp_server.root / "big.bin").exists()
    assert "the move was cancelled" in notes[-1]


async def test_kill_9_mid_site_to_site_mv_then_queue_resume_completes_it(
        ferry_home, sftp_server, tmp_path):
    want = write_random(sftp_server.root / "a" / "study.zip", 6 * MiB, seed=21)
    (sftp_server.root / "b").mkdir()
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        store = SiteStore()
        store.add(sftp_server.site("pacs", port=proxy.port, remote_dir="/a"))
        store.add(sftp_server.site("archive", remote_dir="/b"))
        await kill_when_checkpointed("mv", "pacs:/a/study.zip", "archive:/b/")
        assert (sftp_server.root / "a" / "study.zip").exists()
        assert os.listdir(relay_root())  # the staging folder is kept for the relay
        proxy.rate = None
        code, out, err = await ferry("queue", "resume", "--json")
    assert code == 0, err
    assert sha256_of(sftp_server.root / "b" / "study.zip") == want
    assert not (sftp_server.root / "a" / "study.zip").exists()
    assert os.listdir(relay_root()) == []  # staging removed
    moved = [json.loads(line) for line in out.splitlines() if '"kind": "move"' in line]
    assert moved and moved[-1]["complete"] is True and len(moved[-1]["deleted"]) == 1
    jobs = Journal().job_rows()
    assert [j.spec.direction for j in jobs] == ["get", "put"]
    assert all(j.state == "done" for j in jobs)
