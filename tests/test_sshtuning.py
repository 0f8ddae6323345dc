"""SFTP receive windows follow the link: small on loopback, big across a 40 ms round trip,
and data still arrives intact through the sliced receive path."""

from __future__ import annotations

import asyncio
import hashlib

from backend import ssh
from backend.sshtuning import WINDOW_MAX, WINDOW_MIN, receive_window, start_sftp, window_for
from bench import wan
from tests.servers import free_port


def test_window_sizes_follow_the_round_trip() -> None:
    assert window_for(0.0002) == WINDOW_MIN  # loopback / LAN
    assert window_for(0.040) == WINDOW_MAX  # the 40 ms WAN of DESIGN.md §5
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
