"""Three ``ferry serve`` processes on one PostgreSQL and one SeaweedFS, requests spread
round-robin over them from several 127.0.0.x addresses: the concurrency guarantees of
tests/test_share_concurrency.py hold across instances (one complete download of a
one-download link, password attempts counted once for all, a revoke on one instance stops a
stream on another, a killed instance's slot lapses by its lease)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from backend.shares.client import ShareClient
from backend.shares.keys import ServerKey
from backend.shares.server import load_or_create_admin_token
from tests.scaleout_parts import _wait_port, free_port
from tests.share_helpers import session_from, share_random

ROOT = Path(__file__).resolve().parent.parent
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 7)]
PASSWORD = "correct horse battery"
LEASE = 2.0  # the instances' lease_seconds (share-service.toml): a dead one's slot lapses fast


@dataclass
class Instance:
    home: Path
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    instances: list[Instance]
    token: str
    database: str
    blob_store: str

    def client(self, i: int = 0) -> ShareClient:
        return ShareClient(url=self.instances[i].url, token=self.token)

    def link(self, url: str, i: int) -> str:
        return self.instances[i % len(self.instances)].url + "/s/" + url.rsplit("/s/", 1)[1]

    def kill(self, i: int) -> None:
        proc = self.instances[i].proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _start_instance(home: Path, database: str, blob_store: str, env: dict) -> Instance:
    port = free_port()
    log = home / "serve.log"
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--listen", f"127.0.0.1:{port}",
         "--database", database, "--blob-store", blob_store],
        cwd=ROOT, env={**env, "FERRY_HOME": str(home)}, stdout=fh, stderr=subprocess.STDOUT,
    )
    fh.close()
    return Instance(home, port, proc, log)


@pytest.fixture
async def cluster(tmp_path, pg_url, s3_url, monkeypatch) -> AsyncIterator[Cluster]:
    first = tmp_path / "home0"
    first.mkdir(mode=0o700)
    monkeypatch.setenv("FERRY_HOME", str(first))
    ServerKey.load_or_create(first / "share-server.key")
    token = load_or_create_admin_token(first / "share-admin.token")
    env = {k: v for k, v in os.environ.items() if k != "FERRY_HOME"}
    instances = []
    for i in range(3):
        home = tmp_path / f"home{i}"
        home.mkdir(mode=0o700, exist_ok=True)
        for name in ("share-server.key", "share-admin.token"):  # the same secrets everywhere
            if i:
                shutil.copy2(first / name, home / name)
        (home / "share-service.toml").write_text(f"lease_seconds = {LEASE}\n")
        instances.append(_start_instance(home, pg_url, s3_url, env))
    try:
        for inst in instances:
            _wait_port(inst.port, 60, inst.proc, inst.log)
        yield Cluster(instances, token, pg_url, s3_url)
    finally:
        for inst in instances:
            if inst.proc.poll() is None:
                inst.proc.send_signal(signal.SIGTERM)
        for inst in instances:
            try:
                inst.proc.wait(15)
            except subprocess.TimeoutExpired:
                inst.proc.kill()
                inst.proc.wait()


async def _download(address: str, url: str, password: str) -> tuple[int, bytes]:
    async with session_from(address) as s:
        try:
            async with s.post(url + "/download", data={"password": password}) as resp:
                return resp.status, await resp.read()
        except aiohttp.ClientPayloadError:
            return -1, b""


async def _share(cluster: Cluster, tmp_path: Path, size: int, **options) -> tuple[dict, bytes]:
    return await share_random(tmp_path, size, client=cluster.client(), name=f"scan-{size}.bin",
                              **options)


def _audit(cluster: Cluster, event: str) -> list:
    from backend.shares.backends import load_storage, open_scaled_out

    backends = open_scaled_out(load_storage(cluster.database, cluster.blob_store),
                               ServerKey.load_or_create(), migrate=False)
    try:
        assert backends.audit.verify().ok
        return backends.audit.query(event=event)
    finally:
        backends.close()


async def test_one_download_link_gives_one_copy_across_three_instances(cluster, tmp_path):
    created, data = await _share(cluster, tmp_path, 6 * 1024 * 1024, max_downloads=1)
    url = created["links"][0]["url"]
    results = await asyncio.gather(*(
        _download(ADDRESSES[i % len(ADDRESSES)], cluster.link(url, i), PASSWORD)
        for i in range(24)
    ))
    statuses = [s for s, _ in results]
    complete = [body for status, body in results if status == 200 and body == data]
    assert len(complete) == 1, statuses
    assert set(statuses) <= {200, 410, 429}, statuses
    for _ in range(100):
        shown = await cluster.client(2).show(created["share"]["id"])
        if shown["status"] == "purged":
            break
        await asyncio.sleep(0.05)
    assert shown["downloads"] == 1 and shown["status"] == "purged"
    assert len(_audit(cluster, "share.downloaded")) == 1


async def test_wrong_passwords_are_counted_across_instances(cluster, tmp_path):
    created, _ = await _share(cluster, tmp_path, 1000)
    url = created["links"][0]["url"]
    statuses: list[int] = []
    for _round in range(20):  # parallel guesses spread over 3 instances until the link locks
        statuses += [s for s, _ in await asyncio.gather(*(
            _download(ADDRESSES[i % len(ADDRESSES)], cluster.link(url, i), "wrong password!")
            for i in range(15)
        ))]
        if (await cluster.client(1).show(created["share"]["id"]))["recipients"][0][
                "failed_attempts"] >= 5:
            break
    failed = _audit(cluster, "share.password_failed")
    # 3 instances, yet no more checks than one instance's lockout allows
    assert sorted(r.fields["failures"] for r in failed) == [1, 2, 3, 4, 5]
    assert statuses.count(403) == 5 and set(statuses) <= {403, 429}, statuses
    for i in range(3):  # every instance refuses now, the right password too
        assert (await _download(ADDRESSES[0], cluster.link(url, i), PASSWORD))[0] == 429


async def test_a_browser_ticket_from_one_instance_works_on_another(cluster, tmp_path):
    created, data = await _share(cluster, tmp_path, 50_000)
    url = created["links"][0]["url"]
    async with aiohttp.ClientSession() as s:
        async with s.post(cluster.link(url, 0) + "/download",
                          data={"password": PASSWORD, "browser": "1"},
                          allow_redirects=False) as resp:
            assert resp.status in (302, 303)
            cookie = resp.cookies
        jar = {k: v.value for k, v in cookie.items()}
    async with aiohttp.ClientSession(cookies=jar) as s, s.get(
            cluster.link(url, 2) + "/download") as resp:
        assert resp.status == 200 and await resp.read() == data


async def _slow_download(address: str, url: str, got: list[int], done: asyncio.Event,
                         outcome: dict) -> None:
    """Read slowly (the stream stays open for seconds) and record how it ended."""
    async with session_from(address) as s:
        try:
            async with s.post(url + "/download", data={"password": PASSWORD}) as resp:
                outcome["status"] = resp.status
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    got[0] += len(chunk)
                    await asyncio.sleep(0.01)
                outcome["ended"] = "complete"
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientConnectionError) as exc:
            outcome["ended"] = type(exc).__name__
        finally:
            outcome["at"] = time.monotonic()
            done.set()


async def test_revoke_on_one_instance_stops_a_stream_on_another(cluster, tmp_path):
    size = 64 * 1024 * 1024
    created, _ = await _share(cluster, tmp_path, size)
    url = created["links"][0]["url"]
    got, done, outcome = [0], asyncio.Event(), {}
    task = asyncio.create_task(_slow_download(ADDRESSES[1], cluster.link(url, 2), got, done,
                                              outcome))
    while got[0] < 1024 * 1024:
        await asyncio.sleep(0.05)
        assert not done.is_set(), outcome
    revoked_at = time.monotonic()
    await cluster.client(0).revoke(created["share"]["id"])
    await asyncio.wait_for(done.wait(), 10)
    await task
    assert outcome["status"] == 200 and outcome["ended"] != "complete", outcome
    assert outcome["at"] - revoked_at < 2.5, outcome["at"] - revoked_at
    assert got[0] < size
    status, _ = await _download(ADDRESSES[2], cluster.link(url, 1), PASSWORD)
    assert status == 410


async def test_a_killed_instance_loses_no_accounting(cluster, tmp_path):
    size = 48 * 1024 * 1024
    created, data = await _share(cluster, tmp_path, size, max_downloads=1)
    url = created["links"][0]["url"]
    got, done, outcome = [0], asyncio.Event(), {}
    task = asyncio.create_task(_slow_download(ADDRESSES[0], cluster.link(url, 2), got, done,
                                              outcome))
    while got[0] < 1024 * 1024:
        await asyncio.sleep(0.05)
    cluster.kill(2)  # SIGKILL mid-download: its slot is never released
    await asyncio.wait_for(done.wait(), 10)
    await task
    assert outcome["ended"] != "complete"
    killed_at = time.monotonic()
    status, _ = await _download(ADDRESSES[1], cluster.link(url, 0), PASSWORD)
    assert status == 429  # the dead instance's slot still holds the one download
    while time.monotonic() - killed_at < LEASE + 0.5:
        await asyncio.sleep(0.1)
    status, body = await _download(ADDRESSES[1], cluster.link(url, 1), PASSWORD)
    assert status == 200 and body == data  # the lease lapsed: the download is not lost
    shown = await cluster.client(0).show(created["share"]["id"])
    assert shown["downloads"] == 1
    assert (await _download(ADDRESSES[2], cluster.link(url, 0), PASSWORD))[0] == 410
    assert len(_audit(cluster, "share.downloaded")) == 1
