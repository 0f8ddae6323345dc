"""Transfers survive faults: connection cuts (in-process server and OpenSSH), server I/O
errors, short reads, truncation, and hostile names/symlinks; nothing partial is published."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from backend.demo.server import start_sftp_server
from backend.transfers import JobSpec
from tests.hostile import HostileSFTPServer
from tests.proxies import Proxy
from tests.servers import InProcessServer, write_private_key
from tests.transfer_helpers import make_engine, sha256_of, write_random

MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def server_with(tmp_path: Path, host_key, client_key, factory=None,
                      allow_exec: bool = True) -> AsyncIterator[InProcessServer]:
    key_path = write_private_key(client_key, tmp_path / "id_fault")
    server = await start_sftp_server(tmp_path / "remote", host_key=host_key,
                                     authorized_keys=[client_key], sftp_factory=factory,
                                     allow_exec=allow_exec)
    try:
        yield InProcessServer(server=server, client_key_path=key_path)
    finally:
        server.close()
        await server.wait_closed()


async def run_job(make_site, spec: JobSpec, **kw):
    engine = make_engine(make_site, **kw)
    await engine.start()
    try:
        job = await engine.submit(spec)
        status = await engine.wait(job)
        return status, engine.files(job)
    finally:
        await engine.stop()


async def test_download_cut_mid_file_reconnects_and_completes(ferry_home, sftp_server,
                                                               tmp_path):
    want = write_random(sftp_server.root / "study.zip", 6 * MiB, seed=3)
    with Proxy(sftp_server.port, drop_after=2 * MiB) as proxy:
        status, files = await run_job(
            lambda: sftp_server.site("lab", port=proxy.port),
            JobSpec("get", "lab", ["/study.zip"], str(tmp_path)),
        )
        assert proxy.cuts == 1 and proxy.connections >= 2
    assert status.state == "done", files
    assert sha256_of(tmp_path / "study.zip") == want
    assert files[0].verify == "sha256-server" and files[0].sha256 == want


async def test_upload_to_openssh_cut_mid_file_completes(ferry_home, sshd, tmp_path):
    src = tmp_path / "up" / "scan.dcm"
    want = write_random(src, 12 * MiB, seed=4)
    dest = tmp_path / "sshd-dest"
    dest.mkdir()
    # the server->client direction carries only acks for an upload: cut after a few of them
    with Proxy(sshd.port, drop_after=5 * MiB, rate=6_000_000) as proxy:
        status, files = await run_job(
            lambda: sshd.site("real", port=proxy.port),
            JobSpec("put", "real", [str(src)], str(dest) + "/"),
        )
        assert proxy.cuts == 1
    assert status.state == "done", files
    assert sha256_of(dest / "scan.dcm") == want
    assert not (dest / "scan.dcm.ferrypart").exists()
    assert files[0].verify == "sha256-server"


class FlakyRead(asyncssh.SFTPServer):
    """Fails one read with an I/O error once 1 MiB has been served."""

    served = 0
    failed = False

    def read(self, file_obj, offset, size):
        if offset >= MiB and not FlakyRead.failed:
            FlakyRead.failed = True
            raise asyncssh.SFTPFailure("I/O error (injected)")
        return super().read(file_obj, offset, size)


class BrokenRead(asyncssh.SFTPServer):
    """Every read past 1 MiB of a file named bad* fails: a bad disk sector."""

    def open(self, path, pflags, attrs):
        file_obj = super().open(path, pflags, attrs)
        if b"bad" in path:
            self.bad = {*getattr(self, "bad", set()), id(file_obj)}
        return file_obj

    def read(self, file_obj, offset, size):
        if offset >= MiB and id(file_obj) in getattr(self, "bad", set()):
            raise asyncssh.SFTPFailure("I/O error (injected)")
        return super().read(file_obj, offset, size)


class ShortRead(asyncssh.SFTPServer):
    """Answers every read with at most 1000 bytes (legal, and must still give the whole file)."""

    def read(self, file_obj, offset, size):
        return super().read(file_obj, offset, min(size, 1000))


class Truncating(asyncssh.SFTPServer):
    """Reports the full size but hits EOF after 100 KB: the file shrank on the server."""

    def read(self, file_obj, offset, size):
        if offset >= 100_000:
            return b""
        return super().read(file_obj, offset, min(size, 100_000 - offset))


async def test_transient_server_io_error_is_retried_and_the_file_completes(
        ferry_home, tmp_path, host_key, client_key):
    FlakyRead.failed = False
    async with server_with(tmp_path, host_key, client_key, FlakyRead) as server:
        want = write_random(server.root / "a.bin", 3 * MiB, seed=5)
        status, files = await run_job(lambda: server.site("f"),
                                      JobSpec("get", "f", ["/a.bin"], str(tmp_path)))
    assert FlakyRead.failed
    assert status.state == "done", files
    assert sha256_of(tmp_path / "a.bin") == want


async def test_persistent_server_error_fails_that_file_only_and_publishes_nothing(
        ferry_home, tmp_path, host_key, client_key):
    async with server_with(tmp_path, host_key, client_key, BrokenRead) as server:
        write_random(server.root / "bad.bin", 2 * MiB, seed=6)
        good = write_random(server.root / "good.bin", 2 * MiB, seed=7)
        out = tmp_path / "out"
        out.mkdir()
        status, files = await run_job(
            lambda: server.site("f"), JobSpec("get", "f", ["/bad.bin", "/good.bin"], str(out)))
    assert status.state == "failed" and status.files_failed == 1
    bad = next(f for f in files if f.source.endswith("bad.bin"))
    assert bad.state == "failed" and "I/O error" in (bad.error or "")
    assert not (out / "bad.bin").exists()
    assert sha256_of(out / "good.bin") == good


async def test_short_reads_still_give_the_exact_file(ferry_home, tmp_path, host_key, client_key):
    async with server_with(tmp_path, host_key, client_key, ShortRead) as server:
        want = write_random(server.root / "s.bin", 700_000, seed=8)
        status, _ = await run_job(lambda: server.site("f"),
                                  JobSpec("get", "f", ["/s.bin"], str(tmp_path)))
    assert status.state == "done"
    assert sha256_of(tmp_path / "s.bin") == want


async def test_truncated_source_fails_and_leaves_no_final_file(ferry_home, tmp_path, host_key,
                                                              client_key):
    async with server_with(tmp_path, host_key, client_key, Truncating,
                           allow_exec=False) as server:
        write_random(server.root / "t.bin", 500_000, seed=9)
        status, files = await run_job(lambda: server.site("f"),
                                      JobSpec("get", "f", ["/t.bin"], str(tmp_path)))
    assert status.state == "failed"
    assert "shrank" in (files[0].error or "")
    assert not (tmp_path / "t.bin").exists()


async def test_hostile_names_and_symlinks_never_leave_the_destination(
        ferry_home, tmp_path, host_key, client_key):
    async with server_with(tmp_path, host_key, client_key, HostileSFTPServer) as server:
        case = server.root / "case"
        case.mkdir(parents=True)
        write_random(case / "ok.txt", 100, seed=10)
        os.symlink("/etc/passwd", case / "passwd-link")
        os.symlink("/etc", case / "etc-dir-link")
        out = tmp_path / "dest"
        out.mkdir()
        status, files = await run_job(lambda: server.site("h"),
                                      JobSpec("get", "h", ["/case"], str(out), recursive=True))
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert written == ["case", "case/ok.txt"]
    assert not (tmp_path / "escape.txt").exists()
    assert not any(p.is_symlink() for p in out.rglob("*"))
    skipped = {Path(f.source).name for f in files if f.state == "skipped"}
    assert {"passwd-link", "etc-dir-link"} <= skipped
    rejected = [f for f in files if f.state == "failed"]
    assert rejected and all("unsafe remote name" in (f.error or "") for f in rejected)
    assert all("\x1b" not in (f.error or "") for f in files)
    assert status.files_done == 1


@pytest.mark.parametrize("allow_exec", [False])
async def test_sftp_only_account_falls_back_to_size_and_tail(ferry_home, tmp_path, host_key,
                                                             client_key, allow_exec):
    async with server_with(tmp_path, host_key, client_key, allow_exec=allow_exec) as server:
        want = write_random(server.root / "x.bin", 300_000, seed=11)
        status, files = await run_job(lambda: server.site("s"),
                                      JobSpec("get", "s", ["/x.bin"], str(tmp_path)))
    assert status.state == "done"
    assert files[0].verify == "size+tail" and files[0].sha256 == want
