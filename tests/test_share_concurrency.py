"""The share service's limits under real concurrent clients (aiohttp, several 127.0.0.x
source addresses): download slots, password lockouts, leases of a dead process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from backend.audit import AuditLog
from backend.shares.client import ShareClient
from backend.shares.store import SqliteMetadataStore
from tests.share_helpers import session_from, share_random

ROOT = Path(__file__).resolve().parent.parent
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 7)]
PASSWORD = "correct horse battery"


async def _download(address: str, url: str, password: str,
                    headers: dict | None = None) -> tuple[int, bytes]:
    async with session_from(address) as s:
        try:
            async with s.post(url + "/download", data={"password": password},
                              headers=headers or {}) as resp:
                return resp.status, await resp.read()
        except aiohttp.ClientPayloadError:
            return -1, b""


async def _ferry(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", *args, cwd=ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_parallel_downloads_of_a_one_download_link_give_exactly_one_copy(svc, tmp_path):
    created, data = await share_random(tmp_path, 6 * 1024 * 1024, max_downloads=1)
    url = created["links"][0]["url"]
    results = await asyncio.gather(*(
        _download(ADDRESSES[i % len(ADDRESSES)], url, PASSWORD) for i in range(24)
    ))
    complete = [body for status, body in results if status == 200 and body == data]
    assert len(complete) == 1, [s for s, _ in results]
    assert {s for s, _ in results} <= {200, 410, 429}
    share_id = created["share"]["id"]
    for _ in range(100):  # the purge after the last download runs in the background
        code, out = await _ferry("share", "show", share_id, "--json")
        shown = json.loads(out)
        if shown["status"] == "purged":
            break
        await asyncio.sleep(0.05)
    assert code == 0 and shown["downloads"] == 1
    assert shown["recipients"][0]["downloads"] == 1
    assert len(AuditLog().query(event="share.downloaded")) == 1


async def test_parallel_ranges_cannot_exceed_the_byte_allowance(svc, tmp_path):
    """Ranged requests do not count as downloads but reserve bytes: (1 + 2) x size at most."""
    size = 2 * 1024 * 1024
    created, _data = await share_random(tmp_path, size, max_downloads=1)
    url = created["links"][0]["url"]
    half = {"Range": f"bytes=0-{size // 2 - 1}"}
    results = await asyncio.gather(*(
        _download(ADDRESSES[i % len(ADDRESSES)], url, PASSWORD, half) for i in range(20)
    ))
    served = sum(len(body) for status, body in results if status == 206)
    assert served <= 3 * size
    assert sum(1 for s, _ in results if s == 206) == 6
    # the rest: 429 while the allowance is reserved by running requests, 410 once spent
    assert {s for s, _ in results} <= {206, 410, 429}, [s for s, _ in results]


async def test_parallel_wrong_passwords_get_no_more_checks_than_the_lockout(svc, tmp_path):
    created, _ = await share_random(tmp_path, 1000)
    url = created["links"][0]["url"]
    statuses: list[int] = []
    for _round in range(5):
        statuses += [s for s, _ in await asyncio.gather(*(
            _download(ADDRESSES[i % len(ADDRESSES)], url, "wrong password!") for i in range(20)
        ))]
    failed = AuditLog().query(event="share.password_failed")
    # each checked password leaves one row; the 5th failure locks the link for 30 s
    assert len(failed) == 5, len(failed)
    assert sorted(r.fields["failures"] for r in failed) == [1, 2, 3, 4, 5]
    assert statuses.count(403) == 5 and statuses.count(429) == 95
    shown = await ShareClient().show(created["share"]["id"])
    assert shown["recipients"][0]["failed_attempts"] == 5
    status, _ = await _download(ADDRESSES[0], url, PASSWORD)
    assert status == 429  # the right password waits for the lock too


async def test_lock_decays_and_right_password_after_it_resets(svc, tmp_path):
    created, data = await share_random(tmp_path, 1000)
    url = created["links"][0]["url"]
    service = svc.service
    service.failure_memory = 1.0  # failures are forgotten 1 s after the lock ends
    store = service.store
    rid = created["links"][0]["recipient_id"]
    for _ in range(4):
        assert (await _download(ADDRESSES[0], url, "wrong password!"))[0] == 403
    # a lock that has run out: the right password works and resets the count
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.update_recipient(rid, failed_attempts=5, locked_until=past)
    status, body = await _download(ADDRESSES[1], url, PASSWORD)
    assert status == 200 and body == data
    assert (await ShareClient().show(created["share"]["id"]))["recipients"][0][
        "failed_attempts"] == 0
    # four more failures, a quiet second, and the count starts again from 1
    for _ in range(4):
        assert (await _download(ADDRESSES[2], url, "wrong password!"))[0] == 403
    await asyncio.sleep(1.2)
    assert (await _download(ADDRESSES[3], url, "wrong password!"))[0] == 403
    assert AuditLog().query(event="share.password_failed")[-1].fields["failures"] == 1


async def test_a_slot_held_by_a_dead_process_is_released_by_its_lease(svc, ferry_home, tmp_path):
    created, data = await share_random(tmp_path, 5000, max_downloads=1)
    url = created["links"][0]["url"]
    rid = created["links"][0]["recipient_id"]
    # another process took the slot and died without releasing it (its lease: 1.5 s)
    other = SqliteMetadataStore(ferry_home / "state" / "shares.sqlite")
    now = datetime.now(UTC)
    assert other.acquire_download(rid, now=now, lease_until=now + timedelta(seconds=1.5),
                                  max_downloads=1, slot=True, nbytes=5000, bytes_cap=15000)
    other.close()
    status, _ = await _download(ADDRESSES[0], url, PASSWORD)
    assert status == 429
    await asyncio.sleep(1.6)
    status, body = await _download(ADDRESSES[0], url, PASSWORD)
    assert status == 200 and body == data
    assert (await ShareClient().show(created["share"]["id"]))["downloads"] == 1


async def test_a_suffix_range_is_not_a_complete_download(svc, tmp_path):
    created, data = await share_random(tmp_path, 4000, max_downloads=1)
    url = created["links"][0]["url"]
    status, body = await _download(ADDRESSES[0], url, PASSWORD, {"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:]
    shown = await ShareClient().show(created["share"]["id"])
    assert shown["downloads"] == 0 and shown["status"] == "active"
    # the first part then the rest: every byte delivered, so now it counts
    status, body = await _download(ADDRESSES[0], url, PASSWORD, {"Range": "bytes=0-1999"})
    assert status == 206 and body == data[:2000]
    status, body = await _download(ADDRESSES[0], url, PASSWORD, {"Range": "bytes=2000-"})
    assert status == 206 and body == data[2000:]
    assert (await ShareClient().show(created["share"]["id"]))["downloads"] == 1
    assert hashlib.sha256(data).hexdigest() == created["share"]["sha256"]


async def test_many_parallel_right_passwords_are_all_served(svc, tmp_path):
    """One check per link at a time must not starve a team sharing one link."""
    created, data = await share_random(tmp_path, 200_000, max_downloads=0)
    url = created["links"][0]["url"]
    results = await asyncio.gather(*(
        _download(ADDRESSES[i % len(ADDRESSES)], url, PASSWORD) for i in range(30)
    ), _download(ADDRESSES[0], url, PASSWORD + "x"))
    assert [s for s, _ in results[:30]] == [200] * 30
    assert all(body == data for _, body in results[:30])
    assert results[30][0] == 403  # a remembered right password lets no other through
