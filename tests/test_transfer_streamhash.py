"""Big uploads hashed by the server while they are written (OpenSSH sshd, real shells)."""

from __future__ import annotations

import hashlib
import logging

import pytest

from backend import ssh
from backend.transfers import JobSpec, streamhash
from backend.transfers.streamhash import StreamingHash, start_streaming
from tests.proxies import Proxy
from tests.test_transfer_faults import run_job
from tests.transfer_helpers import sha256_of, write_random

MiB = 1024 * 1024


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"


@pytest.fixture
def transfer_log():
    """What the engine logs (the "ferry" logger does not propagate once the CLI set it up)."""
    logger = logging.getLogger("ferry.transfers")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def streaming(monkeypatch):
    """Stream hashes for files from 4 MiB on, announced every 1 MiB, also for a server on
    this machine (the test's sshd)."""
    monkeypatch.setattr(streamhash, "STREAM_AT", 4 * MiB)
    monkeypatch.setattr(streamhash, "STEP", MiB)
    monkeypatch.setattr(streamhash, "SAME_HOST_TOO", True)


async def test_big_upload_is_verified_by_the_digest_the_server_computed_while_receiving(
        ferry_home, sshd, tmp_path, streaming, transfer_log):
    src = tmp_path / "up" / "study.zip"
    want = write_random(src, 9 * MiB + 12345, seed=21)
    dest = tmp_path / "sshd-dest"
    dest.mkdir()
    status, files = await run_job(lambda: sshd.site("real"),
                                  JobSpec("put", "real", [str(src)], str(dest) + "/"))
    assert status.state == "done", files
    assert files[0].verify == "sha256-server" and files[0].sha256 == want
    assert sha256_of(dest / "study.zip") == want
    assert "hashed by the server while uploading" in transfer_log.text
    assert not list(dest.glob("*.ferrypart"))


async def test_upload_cut_mid_file_resumes_and_the_stream_covers_the_kept_prefix(
        ferry_home, sshd, tmp_path, streaming, transfer_log):
    src = tmp_path / "up" / "study.zip"
    want = write_random(src, 12 * MiB, seed=22)
    dest = tmp_path / "sshd-dest"
    dest.mkdir()
    with Proxy(sshd.port, drop_after=5 * MiB, rate=6_000_000) as proxy:
        status, files = await run_job(lambda: sshd.site("real", port=proxy.port),
                                      JobSpec("put", "real", [str(src)], str(dest) + "/"))
        assert proxy.cuts == 1
    assert status.state == "done", files
    assert files[0].verify == "sha256-server" and files[0].sha256 == want
    assert sha256_of(dest / "study.zip") == want
    assert "hashed by the server while uploading" in transfer_log.text


async def test_streamed_digest_is_the_files_and_a_missing_file_gives_none(sshd, tmp_path):
    site = sshd.site("real")
    conn = await ssh.connect(site)
    try:
        remote = tmp_path / "series.bin"
        data = write_random(remote, 3 * MiB + 7, seed=23)
        stream = StreamingHash(conn, str(remote), 0)
        stream.advance(MiB)  # announced stretches and the remainder add up to the file
        stream.advance(2 * MiB)
        assert await stream.result(3 * MiB + 7) == data
        stream.close()

        prefix = hashlib.sha256((remote.read_bytes())[:MiB]).hexdigest()
        stream = StreamingHash(conn, str(remote), MiB)  # a resumed upload: prefix first
        assert await stream.result(MiB) == prefix
        stream.close()

        gone = StreamingHash(conn, str(tmp_path / "no such file"), 0)
        assert await gone.result(10) is None  # the caller then hashes the whole file
        gone.close()
    finally:
        conn.close()


async def test_no_stream_for_small_uploads_or_a_server_on_this_machine(sshd, monkeypatch):
    conn = await ssh.connect(sshd.site("real"))
    try:
        assert start_streaming(conn, "/x", 0, streamhash.STREAM_AT - 1) is None
        assert start_streaming(conn, "/x", 0, streamhash.STREAM_AT) is None  # 127.0.0.1
        monkeypatch.setattr(streamhash, "SAME_HOST_TOO", True)
        stream = start_streaming(conn, "/x", 0, streamhash.STREAM_AT)
        assert stream is not None
        stream.close()
    finally:
        conn.close()


async def test_one_stream_per_connection_keeps_within_the_servers_session_limit(
        sshd, tmp_path, monkeypatch):
    """OpenSSH allows 10 sessions per connection (MaxSessions): 4 lanes and 4 hashing shells
    leave room for one stream; a second big upload on the same connection hashes at the end."""
    monkeypatch.setattr(streamhash, "SAME_HOST_TOO", True)
    remote = tmp_path / "a.bin"
    want = write_random(remote, MiB, seed=24)
    conn = await ssh.connect(sshd.site("real"))
    try:
        first = start_streaming(conn, str(remote), 0, streamhash.STREAM_AT)
        assert first is not None
        assert start_streaming(conn, str(remote), 0, streamhash.STREAM_AT) is None
        assert await first.result(MiB) == want
        first.close()
        again = start_streaming(conn, str(remote), 0, streamhash.STREAM_AT)
        assert again is not None
        again.close()
    finally:
        conn.close()
