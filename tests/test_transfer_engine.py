"""The transfer engine against the in-process SFTP server: round trips, policies, queue."""

from __future__ import annotations

from backend.audit import AuditLog
from backend.transfers import JobSpec
from tests.transfer_helpers import make_engine, sha256_of, tree, write_random


async def test_download_and_upload_round_trip_verified_and_audited(ferry_home, sftp_server,
                                                                   tmp_path):
    remote = sftp_server.root
    want = write_random(remote / "cases" / "big.bin", 3 * 1024 * 1024 + 17, seed=1)
    write_random(remote / "cases" / "sub" / "small.txt", 1000, seed=2)
    (remote / "cases" / "empty").write_bytes(b"")
    engine = make_engine(lambda: sftp_server.site("lab"))
    await engine.start()
    try:
        out = tmp_path / "local"
        out.mkdir()
        job = await engine.submit(JobSpec("get", "lab", ["/cases"], str(out), recursive=True))
        status = await engine.wait(job)
        assert status.state == "done", status
        assert status.files_done == 3
        assert sha256_of(out / "cases" / "big.bin") == want
        assert tree(out / "cases") == tree(remote / "cases")
        assert not list(out.rglob("*.ferrypart"))

        job2 = await engine.submit(JobSpec("put", "lab", [str(out / "cases")], "/back/",
                                           recursive=True))
        assert (await engine.wait(job2)).state == "done"
        assert tree(remote / "back" / "cases") == tree(remote / "cases")
    finally:
        await engine.stop()
    rows = AuditLog().query(event="transfer.file")
    assert len(rows) == 6
    big = [r for r in rows if r.fields["source"].endswith("big.bin")]
    assert big[0].fields["sha256"] == want and big[0].fields["verify"] == "sha256-server"


async def test_big_files_split_over_several_lanes_arrive_intact_both_ways(
        ferry_home, sftp_server, tmp_path, monkeypatch):
    import asyncssh

    from backend.transfers import copier
    from tests.proxies import Proxy

    monkeypatch.setattr(copier, "SPLIT_DOWNLOAD_AT", 256 * 1024)
    monkeypatch.setattr(copier, "SPLIT_UPLOAD_AT", 256 * 1024)
    monkeypatch.setattr(copier, "SHORT_LINK_RTT", 0.0)  # split even on loopback
    monkeypatch.setattr(copier, "MAX_BLOCK", 32 * 1024)  # many blocks, interleaved lanes
    monkeypatch.setattr(copier, "THREADED_AT", 1024 * 1024)  # writes on the helper thread
    opened_on: dict[str, set[int]] = {}
    real_open = asyncssh.SFTPClient.open

    async def counting_open(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened_on.setdefault(str(path).rsplit("/", 1)[-1], set()).add(id(self))
        return await real_open(self, path, *args, **kwargs)

    monkeypatch.setattr(asyncssh.SFTPClient, "open", counting_open)
    want = write_random(sftp_server.root / "big.bin", 4 * 1024 * 1024 + 3, seed=7)
    with Proxy(sftp_server.port, rate=6_000_000) as slow:  # slow enough for lanes to join
        engine = make_engine(lambda: sftp_server.site("lab", port=slow.port))
        await engine.start()
        try:
            job = await engine.submit(JobSpec("get", "lab", ["/big.bin"],
                                              str(tmp_path / "a.bin")))
            assert (await engine.wait(job)).state == "done"
            assert sha256_of(tmp_path / "a.bin") == want
            job = await engine.submit(JobSpec("put", "lab", [str(tmp_path / "a.bin")],
                                              "/up.bin"))
            assert (await engine.wait(job)).state == "done"
            assert sha256_of(sftp_server.root / "up.bin") == want
        finally:
            await engine.stop()
    assert len(opened_on["big.bin"]) == copier.DOWNLOAD_LANES  # really split
    assert len(opened_on["up.bin.ferrypart"]) == copier.UPLOAD_LANES
    rows = AuditLog().query(event="transfer.file")
    assert [r.fields["verify"] for r in rows] == ["sha256-server", "sha256-server"]


async def test_big_transfers_start_on_the_first_lane_while_the_others_open(
        ferry_home, sftp_server, tmp_path, monkeypatch):
    """Opening an SFTP channel costs the server a process and several round trips: a big
    file must not wait for all its lanes before data moves, and the late ones still join."""
    import asyncio

    import asyncssh

    from backend.transfers import copier, pool
    from tests.proxies import Proxy

    monkeypatch.setattr(copier, "SPLIT_DOWNLOAD_AT", 256 * 1024)
    monkeypatch.setattr(copier, "SPLIT_UPLOAD_AT", 256 * 1024)
    monkeypatch.setattr(copier, "SHORT_LINK_RTT", 0.0)  # split even on loopback
    monkeypatch.setattr(copier, "MAX_BLOCK", 32 * 1024)
    events: list[str] = []
    real_start = pool.start_sftp
    opened = [0]

    async def slow_start(conn):  # type: ignore[no-untyped-def]
        opened[0] += 1
        if opened[0] > 1:  # every lane after the first answers late, as across a WAN
            await asyncio.sleep(0.4)
        sftp = await real_start(conn)
        events.append("lane")
        return sftp

    real_read, real_write = asyncssh.SFTPClientFile.read, asyncssh.SFTPClientFile.write

    async def read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("data")
        return await real_read(self, *args, **kwargs)

    async def write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("data")
        return await real_write(self, *args, **kwargs)

    monkeypatch.setattr(pool, "start_sftp", slow_start)
    monkeypatch.setattr(asyncssh.SFTPClientFile, "read", read)
    monkeypatch.setattr(asyncssh.SFTPClientFile, "write", write)
    src = tmp_path / "big.bin"
    want = write_random(src, 16 * 1024 * 1024 + 5, seed=11)
    with Proxy(sftp_server.port, rate=10_000_000) as slow:
        for spec in (JobSpec("put", "lab", [str(src)], "/up.bin"),
                     JobSpec("get", "lab", ["/up.bin"], str(tmp_path / "back.bin"))):
            engine = make_engine(lambda: sftp_server.site("lab", port=slow.port))
            await engine.start()  # a fresh engine: no lane open yet
            events.clear()
            opened[0] = 0
            try:
                job = await engine.submit(spec)
                assert (await engine.wait(job)).state == "done"
            finally:
                await engine.stop()
            lanes_before_data = events[:events.index("data")].count("lane")
            assert lanes_before_data < events.count("lane"), (spec.direction, events[:8])
            # ... and the late lanes carried data too
            last_lane = len(events) - 1 - events[::-1].index("lane")
            assert "data" in events[last_lane:], (spec.direction, events[last_lane - 3:])
    assert sha256_of(sftp_server.root / "up.bin") == want
    assert sha256_of(tmp_path / "back.bin") == want
