"""SFTP receive windows follow the link: small on loopback, big across a 40 ms round trip,
and data still arrives intact through the sliced receive path; Ferry's connections send no
filler packets."""

from __future__ import annotations

import asyncio
import hashlib

import asyncssh
import pytest
from asyncssh.connection import SSHConnection
from asyncssh.constants import MSG_IGNORE

from backend import ssh
from backend.sshtuning import WINDOW_MAX, WINDOW_MIN, receive_window, start_sftp, window_for
from bench import wan
from tests.servers import free_port


def test_window_sizes_follow_the_round_trip() -> None:
    assert window_for(0.0002) == WINDOW_MIN  # loopback / LAN
    assert window_for(0.040) == WINDOW_MAX  # the 40 ms WAN of docs/architecture.md §5
    assert WINDOW_MIN < window_for(0.010) < WINDOW_MAX


async def _windows_after_probe(site) -> tuple[int | None, int | None]:  # type: ignore[no-untyped-def]
    conn = await ssh.connect(site)
    try:
        first = await start_sftp(conn)
        await asyncio.sleep(0.5)  # the probe's one round trip has answered
        second = await start_sftp(conn)  # opened after the measurement
        return receive_window(first), receive_window(second)
    finally:
        conn.close()


async def test_loopback_channels_keep_the_small_window(ferry_home, sshd) -> None:
    assert await _windows_after_probe(sshd.site()) == (WINDOW_MIN, WINDOW_MIN)


async def test_wan_channels_grow_to_the_big_window_and_data_arrives_intact(
        ferry_home, sshd, tmp_path) -> None:
    payload = (tmp_path / "big.bin")
    payload.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: many socket reads to slice
    port = free_port()
    proxy = wan.start(port, sshd.port, 0.020)  # 40 ms round trip
    try:
        site = sshd.site(port=port)
        assert await _windows_after_probe(site) == (WINDOW_MAX, WINDOW_MAX)
        conn = await ssh.connect(site)
        try:
            sftp = await start_sftp(conn)
            async with sftp.open(str(payload), "rb") as fh:
                data = await fh.read()
        finally:
            conn.close()
    finally:
        proxy.kill()
        proxy.wait()
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload.read_bytes()).digest()


async def test_big_download_splits_over_lanes_only_where_the_window_limits(
        ferry_home, sshd, tmp_path, monkeypatch) -> None:
    """Loopback (and LANs): one channel is as fast and costs the server less; across a
    40 ms round trip a second lane joins."""
    import asyncssh

    from backend.transfers import JobSpec, copier
    from tests.transfer_helpers import make_engine, sha256_of, write_random

    monkeypatch.setattr(copier, "SPLIT_DOWNLOAD_AT", 1024 * 1024)
    want = write_random(tmp_path / "study.zip", 24 * 1024 * 1024, seed=5)
    opened_on: list[set[int]] = []
    real_open = asyncssh.SFTPClient.open

    async def counting_open(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("study.zip"):
            opened_on[-1].add(id(self))
        return await real_open(self, path, *args, **kwargs)

    monkeypatch.setattr(asyncssh.SFTPClient, "open", counting_open)
    port = free_port()
    proxy = wan.start(port, sshd.port, 0.020)
    try:
        for name, site_port in (("loop", sshd.port), ("wan", port)):
            opened_on.append(set())
            engine = make_engine(lambda p=site_port: sshd.site("real", port=p))  # type: ignore[misc]
            await engine.start()
            try:
                job = await engine.submit(JobSpec("get", "real", [str(tmp_path / "study.zip")],
                                                  str(tmp_path / f"{name}.zip")))
                assert (await engine.wait(job)).state == "done"
            finally:
                await engine.stop()
            assert sha256_of(tmp_path / f"{name}.zip") == want
    finally:
        proxy.kill()
        proxy.wait()
    assert [len(lanes) for lanes in opened_on] == [1, copier.DOWNLOAD_LANES]


async def test_uploads_carry_no_filler_packets(ferry_home, sftp_server, tmp_path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncssh sends an empty SSH_MSG_IGNORE before every packet; Ferry's connections do
    not, and the file still arrives intact. The server counts the filler it receives."""
    received: list[int] = []
    handle = SSHConnection._packet_handlers[MSG_IGNORE]

    def counting(self, pkttype, pktid, packet):  # type: ignore[no-untyped-def]
        if isinstance(self, asyncssh.SSHServerConnection):  # the client is in-process too
            received.append(pkttype)
        return handle(self, pkttype, pktid, packet)

    monkeypatch.setitem(SSHConnection._packet_handlers, MSG_IGNORE, counting)
    payload = bytes(range(256)) * 8192  # 2 MiB: ~64 data packets

    async def upload(conn: asyncssh.SSHClientConnection, name: str) -> bytes:
        try:
            sftp = await conn.start_sftp_client()
            async with sftp.open(f"/{name}", "wb") as fh:
                await fh.write(payload)
        finally:
            conn.close()
        return (sftp_server.root / name).read_bytes()

    plain = await asyncssh.connect(sftp_server.host, sftp_server.port, username="tester",
                                   client_keys=[str(sftp_server.client_key_path)],
                                   known_hosts=None)
    assert await upload(plain, "plain.bin") == payload
    assert len(received) > 64  # asyncssh on its own: one filler per packet

    received.clear()
    assert await upload(await ssh.connect(sftp_server.site()), "ferry.bin") == payload
    assert len(received) <= 5, len(received)  # only those before login, not one per packet


class _SlowFirstStat(asyncssh.SFTPServer):
    """Answers the first ``stat`` of a session 50 ms late (a busy machine, a queued reply)."""

    def __init__(self, chan: asyncssh.SSHServerChannel, chroot: bytes | None = None) -> None:
        super().__init__(chan, chroot=chroot)
        self._stats = 0

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:  # type: ignore[override]
        self._stats += 1
        if self._stats == 1:
            await asyncio.sleep(0.05)
        return super().stat(path)


async def test_one_slow_reply_does_not_make_loopback_a_long_link(
        ferry_home, host_key, client_key, tmp_path) -> None:
    """The round trip the download lanes go by (copier.download_lanes) is the least of
    several samples: one late reply on a loaded machine no longer reads as a 50 ms link."""
    from backend.demo.server import start_sftp_server
    from backend.sshtuning import round_trip
    from tests.servers import InProcessServer, write_private_key

    running = await start_sftp_server(tmp_path / "remote", host_key=host_key,
                                      authorized_keys=[client_key], sftp_factory=_SlowFirstStat)
    server = InProcessServer(running, write_private_key(client_key, tmp_path / "id"))
    try:
        conn = await ssh.connect(server.site())
        try:
            await start_sftp(conn)
            deadline = asyncio.get_running_loop().time() + 20
            while (round_trip(conn) is None or round_trip(conn) >= 0.04) \
                    and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            rtt = round_trip(conn)
            assert rtt is not None and rtt < 0.04, rtt
        finally:
            conn.close()
    finally:
        running.close()
        await running.wait_closed()
