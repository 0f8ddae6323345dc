"""The share service end to end over real HTTP on 127.0.0.1: create, download, limits, purge."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from backend.audit import AuditLog
from backend.errors import ShareError
from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import start_share_service, stop_share_service

HOSTILE = "<script>alert(1)</script>.pdf"


def _file(tmp_path: Path, size: int, name: str = "scan.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


async def _share(path: Path, **options: object) -> dict:
    options.setdefault("name", path.name)
    return await ShareClient().create(local_file_source(path), size=path.stat().st_size, **options)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _download(
    url: str, password: str, headers: dict | None = None
) -> tuple[int, bytes, dict]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/download", data={"password": password}, headers=headers or {}
    ) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def _wait_for_event(event: str, count: int = 1) -> None:
    for _ in range(100):
        if len(AuditLog().query(event=event)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event} audit event")


async def test_download_with_right_password_matches_and_is_reported(svc, tmp_path):
    src = _file(tmp_path, 1_300_000)
    created = await _share(src, recipients=["alice@example.org", "bob@example.org"])
    assert len(created["links"]) == 2 and created["password"]
    assert {link["email"] for link in created["links"]} == {"alice@example.org", "bob@example.org"}
    url = created["links"][0]["url"]
    status, body, headers = await _download(url, created["password"])
    assert status == 200 and _sha(body) == _sha(src.read_bytes())
    assert headers["Content-Length"] == str(src.stat().st_size)
    await _wait_for_event("share.downloaded")
    listed = await ShareClient().list()
    alice = next(r for r in listed[0]["recipients"] if r["email"] == "alice@example.org")
    assert alice["downloads"] == 1 and listed[0]["status"] == "active"
    events = await ShareClient().events(since=0)
    assert [e["event"] for e in events] == ["share.created", "share.downloaded"]
    assert events[1]["fields"]["recipient"] == "alice@example.org"
    assert created["password"] not in str(AuditLog().query())


async def test_wrong_passwords_lock_the_link_with_retry_after(svc, tmp_path):
    created = await _share(_file(tmp_path, 1000))
    url = created["links"][0]["url"]
    for _ in range(5):
        status, body, _ = await _download(url, "not-the-password")
        assert status == 403 and b"wrong password" in body
    status, _, headers = await _download(url, created["password"])
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert len(AuditLog().query(event="share.password_failed")) == 5
    assert AuditLog().query(event="share.attempt_locked")


async def test_range_resume_does_not_use_up_the_download_count(svc, tmp_path):
    src = _file(tmp_path, 12 * 1024 * 1024)
    data = src.read_bytes()
    created = await _share(src, max_downloads=1, password="correct horse battery")
    url = created["links"][0]["url"]
    # a broken download: read a little, then drop the connection
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = b"password=correct+horse+battery"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"POST /{url.split('/', 3)[3]}/download HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 100_000:
        got += await asyncio.wait_for(reader.read(65536), 10)
    assert got.startswith(b"HTTP/1.1 200")
    received = len(got.split(b"\r\n\r\n", 1)[1])  # a resume starts from what arrived
    writer.close()
    await _wait_for_event("share.download_partial")
    share = (await ShareClient().list())[0]
    assert share["recipients"][0]["downloads"] == 0 and share["status"] == "active"
    # resume from an offset: 206, the right bytes, and now it counts once
    status, part, headers = await _download(
        url, "correct horse battery", {"Range": f"bytes={received}-"}
    )
    assert status == 206 and part == data[received:]
    assert headers["Content-Range"] == f"bytes {received}-{len(data) - 1}/{len(data)}"
    await _wait_for_event("share.downloaded")
    assert (await ShareClient().list())[0]["recipients"][0]["downloads"] == 1
    status, _, _ = await _download(url, "correct horse battery")
    assert status == 410


async def test_download_limit_then_share_is_purged(svc, tmp_path):
    src = _file(tmp_path, 5000)
    created = await _share(src, max_downloads=2)
    url, pw = created["links"][0]["url"], created["password"]
    for _ in range(2):
        status, body, _ = await _download(url, pw)
        assert status == 200 and body == src.read_bytes()
    status, body, _ = await _download(url, pw)
    assert status == 410 and b"as many times" in body
    await _wait_for_event("share.purged")
    share = (await ShareClient().list())[0]
    assert share["status"] == "purged" and share["purge_reason"] == "exhausted"


async def test_expired_link_is_gone_and_purged(svc, tmp_path):
    created = await _share(_file(tmp_path, 2000), expires="1s")
    url = created["links"][0]["url"]
    await asyncio.sleep(1.2)
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        assert resp.status == 410 and "expired" in await resp.text()
    status, _, _ = await _download(url, created["password"])
    assert status == 410
    assert await ShareClient().purge() == [created["share"]["id"]]
    assert (await ShareClient().show(created["share"]["id"]))["status"] == "purged"


async def test_revoke_answers_410_and_destroys_key_then_blob(svc, ferry_home, tmp_path):
    created = await _share(_file(tmp_path, 4000))
    share_id = created["share"]["id"]
    db = ferry_home / "state" / "shares.sqlite"
    con = sqlite3.connect(db)
    wrapped, blob_id = con.execute(
        "SELECT wrapped_key, blob_id FROM shares WHERE id=?", (share_id,)
    ).fetchone()
    con.close()
    blob = ferry_home / "shares" / "blobs" / f"{blob_id}.fcx"
    assert blob.exists() and len(wrapped) == 12 + 32 + 16
    revoked = await ShareClient().revoke(share_id)
    assert revoked["status"] == "purged" and revoked["revoked_at"]
    status, body, _ = await _download(created["links"][0]["url"], created["password"])
    assert status == 410 and b"withdrew" in body
    assert not blob.exists()
    con = sqlite3.connect(db)
    assert con.execute("SELECT wrapped_key FROM shares WHERE id=?", (share_id,)).fetchone() == (
        None,
    )
    con.close()
    for suffix in ("", "-wal"):
        f = db.with_name(db.name + suffix)
        if f.exists():
            assert wrapped not in f.read_bytes(), f"wrapped key bytes left in {f.name}"
    events = [r.event for r in AuditLog().query(event="share.*")]
    assert events == ["share.created", "share.revoked", "share.purged"]


async def test_caps_are_refused_with_a_clear_error(ferry_home, tmp_path):
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "share-policy.toml").write_text(
        'max_size = "10KiB"\nmax_expiry = "2d"\ndefault_expiry = "1d"\nmax_recipients = 2\n'
        'allowed_domains = ["nhs.net"]\n'
    )
    handle, _ = await start_share_service("127.0.0.1:0")
    try:
        client = ShareClient()
        big = _file(tmp_path, 20 * 1024)
        with pytest.raises(ShareError, match="over the policy maximum of 10240 bytes"):
            await _share(big)
        small = _file(tmp_path, 100, "small.txt")
        with pytest.raises(ShareError, match="exceeds the policy maximum 2d"):
            await _share(small, expires="3d")
        with pytest.raises(ShareError, match="3 recipients is over the policy maximum of 2"):
            await _share(small, recipients=["a@nhs.net", "b@nhs.net", "c@nhs.net"])
        with pytest.raises(ShareError, match=r"domain 'gmail\.com' is not allowed"):
            await _share(small, recipients=["a@gmail.com"])
        assert await client.list() == []
        assert not list((ferry_home / "shares" / "blobs").iterdir())
    finally:
        await stop_share_service(handle)


async def test_hostile_file_name_is_escaped_under_a_strict_csp(svc, tmp_path):
    created = await _share(_file(tmp_path, 100), name=HOSTILE, message="<b>hi</b>")
    async with aiohttp.ClientSession() as s, s.get(created["links"][0]["url"]) as resp:
        page = await resp.text()
        headers = resp.headers
    assert HOSTILE not in page and "<b>hi" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in page
    assert "<script" not in page.lower()
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert "style-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_admin_api_refuses_missing_or_wrong_token(svc):
    async with aiohttp.ClientSession() as s:
        async with s.get(svc.url + "/api/shares") as resp:
            assert resp.status == 401
        async with s.get(
            svc.url + "/api/shares", headers={"Authorization": "Bearer wrong"}
        ) as resp:
            assert resp.status == 401
    with pytest.raises(ShareError, match="admin token"):
        await ShareClient(url=svc.url, token="x" * 43).list()
    assert await ShareClient().list() == []


async def test_unknown_link_is_404_and_plain_http_off_loopback_is_refused(svc):
    async with aiohttp.ClientSession() as s, s.get(svc.url + "/s/" + "A" * 43) as resp:
        assert resp.status == 404
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match="TLS is required"):
        await start_share_service("0.0.0.0:0")


async def test_self_signed_tls_service_works_with_the_client(ferry_home, tmp_path):
    handle, url = await start_share_service("127.0.0.1:0", tls_self_signed=True)
    try:
        assert url.startswith("https://127.0.0.1:")
        key = ferry_home / "share-tls" / "key.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        assert (ferry_home / "share-admin.token").stat().st_mode & 0o777 == 0o600
        assert (ferry_home / "share-server.key").stat().st_mode & 0o777 == 0o600
        created = await _share(_file(tmp_path, 3000))
        assert created["links"][0]["url"].startswith(url + "/s/")
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(url + "/api/health")
    finally:
        await stop_share_service(handle)


async def test_stopping_the_service_answers_a_waiting_event_poll_at_once(ferry_home):
    """A TUI long-polling for download notices must not hold up shutdown (ferry demo quit)."""
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    poll = asyncio.create_task(ShareClient().events(since=10**9, wait=60))
    await asyncio.sleep(0.5)  # the poll is now waiting inside the service
    await asyncio.wait_for(stop_share_service(handle), 5)  # >= 10 s if the poll held it open
    assert await asyncio.wait_for(poll, 5) == []
