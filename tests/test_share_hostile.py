"""The share service against hostile clients on 127.0.0.x: proxies, floods, odd requests,
revocation during a download, missing blobs, slow clients."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.audit import AuditLog
from backend.shares.client import ShareClient
from backend.shares.server import ServiceHandle, start_share_service, stop_share_service
from tests.share_helpers import session_from, share_random

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
JUNK = "/s/" + "J" * 43


@pytest.fixture
async def proxied(ferry_home: Path) -> AsyncIterator[ServiceHandle]:
    """The service behind a reverse proxy on 127.0.0.1 (trusted); other peers are not."""
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600,
                                          trusted_proxies=["127.0.0.1/32"])
    try:
        yield handle
    finally:
        await stop_share_service(handle)


async def _post(url: str, password: str, address: str = "127.0.0.1",
                headers: dict | None = None) -> tuple[int, bytes]:
    async with session_from(address) as s, s.post(
        url + "/download", data={"password": password}, headers=headers or {}
    ) as resp:
        return resp.status, await resp.read()


async def _get(url: str, address: str = "127.0.0.1", headers: dict | None = None,
               method: str = "GET") -> tuple[int, bytes, dict]:
    async with session_from(address) as s, s.request(method, url, headers=headers or {}) as r:
        return r.status, await r.read(), dict(r.headers)


def _addresses_in_audit() -> set[str]:
    return {str(r.fields["address"]) for r in AuditLog().query() if "address" in r.fields}


# -- findings 3, 4, 5: proxies and floods -------------------------------------------------
async def test_junk_through_one_proxy_address_does_not_lock_recipients_out(svc, tmp_path):
    """Behind a proxy without --trusted-proxy every recipient has the proxy's address."""
    created, data = await share_random(tmp_path, 3000)
    other, _ = await share_random(tmp_path, 2000)
    for _ in range(20):  # unknown links from "the proxy"
        assert (await _get(svc.url + JUNK))[0] in (404, 429)
    for _ in range(6):  # wrong passwords on ANOTHER link from "the proxy"
        assert (await _post(other["links"][0]["url"], "wrong password!"))[0] in (403, 429)
    status, body, _ = await _get(created["links"][0]["url"])
    assert status == 200
    status, body = await _post(created["links"][0]["url"], PASSWORD)
    assert status == 200 and body == data


async def test_unknown_link_lock_per_address_decays(svc):
    now = [1000.0]
    limiter = svc.service.addresses
    limiter._clock = lambda: now[0]  # a test clock instead of 30 s of sleeping
    statuses = [(await _get(svc.url + JUNK, "127.0.0.9"))[0] for _ in range(6)]
    assert statuses[:5] == [404] * 5 and statuses[5] == 429
    assert (await _get(svc.url + JUNK, "127.0.0.10"))[0] == 404  # other addresses unaffected
    now[0] += 30 + limiter.quiet + 1  # the lock ran out, then a quiet hour
    statuses = [(await _get(svc.url + JUNK, "127.0.0.9"))[0] for _ in range(5)]
    assert statuses == [404] * 5  # five fresh tries: the old failures were forgotten


async def test_a_locked_out_client_writes_a_few_aggregated_audit_rows(svc):
    async def hammer(address: str) -> list[int]:
        async with session_from(address) as s:
            out = []
            for _ in range(60):
                async with s.get(svc.url + JUNK) as resp:
                    out.append(resp.status)
            return out

    results = await asyncio.gather(*(hammer(f"127.0.0.{n}") for n in (11, 12)))
    assert all(r.count(429) >= 50 for r in results)
    rows = AuditLog().query(event="share.*")
    # first 404, first 429 (written at once) per address; the rest counted, not written
    assert len(rows) <= 6, [(r.event, r.fields) for r in rows]
    svc.service.refusals.flush(force=True)
    rows = AuditLog().query(event="share.attempt_locked")
    counted = sum(int(r.fields["count"]) for r in rows)
    assert counted == sum(r.count(429) for r in results)
    assert {r.fields["address"] for r in rows} == {"127.0.0.11", "127.0.0.12"}


async def test_forwarded_for_is_read_only_from_a_trusted_proxy(proxied, tmp_path):
    created, _ = await share_random(tmp_path, 1000)
    url = created["links"][0]["url"]
    # from the trusted proxy: the rightmost address it added is the client
    await _post(url, "wrong password!", "127.0.0.1",
                {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"})
    # non-addresses are never taken (nor stored): the proxy's own address is used
    await _post(url, "wrong password!", "127.0.0.1", {"X-Forwarded-For": "<script>"})
    await _post(url, "wrong password!", "127.0.0.1",
                {"X-Forwarded-For": "203.0.113.9, <img src=x>"})
    # from an untrusted peer: its header is ignored
    await _post(url, "wrong password!", "127.0.0.3", {"X-Forwarded-For": "192.0.2.1"})
    addresses = _addresses_in_audit()
    assert addresses == {"203.0.113.5", "127.0.0.1", "127.0.0.3"}, addresses
    text = repr([r.fields for r in AuditLog().query()])
    assert "<script>" not in text and "<img" not in text and "192.0.2.1" not in text


async def test_spoofed_forwarded_for_gives_no_extra_guesses(proxied, tmp_path):
    """Choosing an address per request through the header does not get past the link lock."""
    created, _ = await share_random(tmp_path, 1000)
    url = created["links"][0]["url"]
    statuses = await asyncio.gather(*(
        _post(url, "wrong password!", "127.0.0.4", {"X-Forwarded-For": f"10.9.{i}.1"})
        for i in range(25)
    ))
    assert len(AuditLog().query(event="share.password_failed")) == 5
    assert sum(1 for s, _ in statuses if s == 429) == 20


async def test_serve_refuses_a_bad_trusted_proxy_with_one_line(ferry_home):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", "serve", "--listen", "127.0.0.1:0",
        "--trusted-proxy", "10.0.0.0/8", "<script>", cwd=ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3
    assert "is not an IP address or CIDR network" in err.decode()
    assert "Traceback" not in err.decode()


# -- finding 7: revoke stops a running download ------------------------------------------
async def _slow_reader(url: str, got: list[int], started: asyncio.Event,
                       body: bytes = b"password=correct+horse+battery") -> str:
    """A recipient reading about 400 KiB/s through a small receive buffer (so what it gets
    is what the service is still sending, not a backlog in the client's kernel)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.bind(("127.0.0.5", 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, (
        f"POST /{url.split('/', 3)[3]}/download HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    try:
        head = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
            except ConnectionResetError:
                return "cut"
            if not chunk:
                return "cut"
            got.append(len(chunk))
            started.set()
            await asyncio.sleep(0.01)
    finally:
        sock.close()


def _blob_path(home: Path, share_id: str) -> Path:
    con = sqlite3.connect(home / "state" / "shares.sqlite")
    (blob_id,) = con.execute("SELECT blob_id FROM shares WHERE id=?", (share_id,)).fetchone()
    con.close()
    return home / "shares" / "blobs" / f"{blob_id}.fcx"


async def test_revoke_stops_a_running_download_within_a_second(svc, ferry_home, tmp_path):
    created, data = await share_random(tmp_path, 40 * 1024 * 1024)
    share_id = created["share"]["id"]
    blob = _blob_path(ferry_home, share_id)
    got: list[int] = []
    started = asyncio.Event()
    reader = asyncio.create_task(_slow_reader(created["links"][0]["url"], got, started))
    await asyncio.wait_for(started.wait(), 10)
    await ShareClient().revoke(share_id)
    at_revoke = sum(got)
    outcome = await asyncio.wait_for(reader, 2)  # the stream ends, it does not run on
    assert outcome == "cut"
    # what was still in socket buffers may arrive; nothing like the rest of the file
    assert sum(got) - at_revoke < 1024 * 1024 and sum(got) < len(data) // 4
    assert not blob.exists()
    events = [r.event for r in AuditLog().query(event="share.*")]
    assert "share.purged" in events and "share.downloaded" not in events


async def test_expiry_stops_a_running_download(svc, ferry_home, tmp_path):
    created, data = await share_random(tmp_path, 40 * 1024 * 1024, expires="3s")
    got: list[int] = []
    started = asyncio.Event()
    reader = asyncio.create_task(_slow_reader(created["links"][0]["url"], got, started))
    await asyncio.wait_for(started.wait(), 10)
    outcome = await asyncio.wait_for(reader, 6)  # expires 3 s after creation
    assert outcome == "cut" and sum(got) < len(data) // 4
    await ShareClient().purge()
    assert not _blob_path(ferry_home, created["share"]["id"]).exists()


# -- findings 8-12: HEAD, Range, the browser form, missing blobs, odd headers -------------
async def _raw(url: str, request: bytes, address: str = "127.0.0.1") -> bytes:
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(address, 0))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return data


async def test_head_sends_headers_only_and_uses_no_allowance(svc, tmp_path):
    created, data = await share_random(tmp_path, 100_000, max_downloads=1)
    url = created["links"][0]["url"] + "/download"
    async with session_from() as s:  # a browser: the form sets the ticket cookie
        async with s.post(url, data={"password": PASSWORD, "browser": "1"},
                          allow_redirects=False) as resp:
            assert resp.status == 303
            ticket = {"Cookie": f"ferry_dl={resp.cookies['ferry_dl'].value}"}
        for _ in range(10):
            async with s.head(url, headers=ticket) as resp:
                assert resp.status == 200 and await resp.read() == b""
                assert resp.headers["Content-Length"] == str(len(data))
        shown = await ShareClient().show(created["share"]["id"])
        assert shown["downloads"] == 0 and shown["status"] == "active"
        assert not AuditLog().query(event="share.download*")
        async with s.get(url, headers=ticket) as resp:
            assert resp.status == 200 and await resp.read() == data


async def test_range_header_edge_cases_never_give_5xx(svc, tmp_path):
    created, data = await share_random(tmp_path, 5000, password=None)
    url = created["links"][0]["url"] + "/download"
    async with session_from() as s, s.post(
        url, data={"password": created["password"], "browser": "1"}, allow_redirects=False
    ) as resp:
        cookie = resp.cookies["ferry_dl"].value
    cases = {
        "bytes=" + "9" * 5000 + "-": 416,  # past the end, however long
        "bytes=0-" + "9" * 5000: 200,  # to the end (shown as a 206 of the whole file)
        "bytes=-" + "9" * 5000: 206,
        "bytes=\u0661\u0662-": 200,  # Arabic-Indic digits: not a range, whole file
        "bytes=0-9,20-29": 200,  # multi-range: the whole file (documented)
        "bytes=-0": 416,
        "bytes=10-5": 416,
    }
    for header, want in cases.items():
        async with session_from() as s, s.get(
            url, headers={"Range": header, "Cookie": f"ferry_dl={cookie}"}
        ) as resp:
            body = await resp.read()
        assert resp.status == want or (want == 200 and resp.status == 206), (header, resp.status)
        if resp.status in (200, 206) and "," not in header and header[-2:] != "-0":
            assert data.endswith(body)


async def test_browser_form_fifth_wrong_password_is_429_not_500(svc, tmp_path):
    created, _ = await share_random(tmp_path, 1000)
    url = created["links"][0]["url"] + "/download"
    statuses = []
    async with session_from() as s:
        for _ in range(7):
            async with s.post(url, data={"password": "wrong password!", "browser": "1"},
                              allow_redirects=False) as resp:
                statuses.append(resp.status)
                page = await resp.text()
    assert statuses[:4] == [403] * 4 and set(statuses[4:]) <= {403, 429}
    assert statuses[-1] == 429 and "Too many" in page


async def test_missing_blob_is_an_error_before_headers_and_marks_the_share_broken(
    svc, ferry_home, tmp_path
):
    created, _ = await share_random(tmp_path, 50_000)
    share_id = created["share"]["id"]
    _blob_path(ferry_home, share_id).unlink()
    status, body = await _post(created["links"][0]["url"], PASSWORD)
    assert status == 410 and b"missing or damaged" in body
    listed = {s["id"]: s for s in await ShareClient().list()}
    assert listed[share_id]["status"] == "broken"
    rows = AuditLog().query(event="share.broken")
    assert len(rows) == 1 and "missing" in rows[0].fields["reason"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", "share", "list", cwd=ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert "broken" in out.decode()


async def test_damaged_blob_is_refused_before_any_byte(svc, ferry_home, tmp_path):
    created, _ = await share_random(tmp_path, 50_000)
    blob = _blob_path(ferry_home, created["share"]["id"])
    raw = bytearray(blob.read_bytes())
    raw[200] ^= 0xFF
    blob.write_bytes(bytes(raw))
    status, body = await _post(created["links"][0]["url"], PASSWORD)
    assert status == 410 and b"missing or damaged" in body
    assert (await ShareClient().show(created["share"]["id"]))["status"] == "broken"


async def test_non_ascii_authorization_header_is_401(svc):
    host = svc.url.split("//")[1]
    for value in ("Bearer \u00e9\u00e8".encode(), b"Bearer \xff\xfe", "Bearer 日本".encode()):
        answer = await _raw(svc.url, b"GET /api/shares HTTP/1.1\r\nHost: " + host.encode()
                            + b"\r\nAuthorization: " + value + b"\r\nConnection: close\r\n\r\n")
        assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 401 Unauthorized",
                                               b"HTTP/1.1 400 Bad Request"), answer[:80]


# -- finding 13: timeouts and connection limits ---------------------------------------------
@pytest.fixture
async def strict(ferry_home: Path) -> AsyncIterator[ServiceHandle]:
    from backend.shares.limits import Limits

    limits = Limits(header_timeout=1.0, body_timeout=1.0, write_timeout=1.0,
                    max_connections_per_address=4)
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600, limits=limits)
    try:
        yield handle
    finally:
        await stop_share_service(handle)


async def _connect(url: str, address: str = "127.0.0.1"):
    host, port = url.split("//")[1].split("/")[0].split(":")
    return await asyncio.open_connection(host, int(port), local_addr=(address, 0))


async def test_slow_headers_are_dropped_with_a_log_line(strict, caplog):
    reader, writer = await _connect(strict.url, "127.0.0.21")
    t0 = asyncio.get_running_loop().time()
    closed_after = None
    for byte in b"GET /s/" + b"A" * 43 + b" HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n":
        if reader.at_eof():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.1)
        if asyncio.get_running_loop().time() - t0 > 5:
            break
    data = await asyncio.wait_for(reader.read(), 5)
    closed_after = asyncio.get_running_loop().time() - t0
    writer.close()
    assert b"HTTP/1.1 200" not in data and closed_after < 3
    assert any("dropped slow client 127.0.0.21" in r.getMessage() for r in caplog.records)


async def test_an_idle_connection_is_closed(strict):
    reader, writer = await _connect(strict.url)
    assert await asyncio.wait_for(reader.read(), 4) == b""
    writer.close()


async def test_a_slow_body_is_refused_with_408(strict, tmp_path, caplog):
    created, _ = await share_random(tmp_path, 1000)
    path = "/" + created["links"][0]["url"].split("/", 3)[3] + "/download"
    reader, writer = await _connect(strict.url, "127.0.0.22")
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\npass".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408")
    assert any("request body not received" in r.getMessage() for r in caplog.records)


async def test_a_reader_that_stops_is_dropped(strict, tmp_path, caplog):
    created, _ = await share_random(tmp_path, 30 * 1024 * 1024)
    path = "/" + created["links"][0]["url"].split("/", 3)[3] + "/download"
    host, port = strict.url.split("//")[1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    _reader, writer = await asyncio.open_connection(sock=sock)
    body = b"password=correct+horse+battery"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
                 f"urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    for _ in range(60):  # read nothing: the service must give up on us
        await asyncio.sleep(0.1)
        if any("made no progress" in r.getMessage() for r in caplog.records):
            break
    writer.close()
    assert any("made no progress" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(0.2)
    rows = AuditLog().query(event="share.download_partial")
    assert rows and rows[0].fields["bytes"] < 30 * 1024 * 1024


async def test_connections_per_address_are_capped(strict):
    held = [await _connect(strict.url, "127.0.0.23") for _ in range(4)]
    reader, writer = await _connect(strict.url, "127.0.0.23")
    answer = await asyncio.wait_for(reader.read(), 3)
    assert answer.startswith(b"HTTP/1.1 429")
    writer.close()
    status, _, _ = await _get(strict.url + JUNK, "127.0.0.24")  # others are served
    assert status == 404
    for _, w in held:
        w.close()


# -- finding 14: TLS and input details -----------------------------------------------------
async def test_self_signed_certificate_is_a_server_leaf(ferry_home):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    handle, _ = await start_share_service("127.0.0.1:0", tls_self_signed=True)
    await stop_share_service(handle)
    cert = x509.load_pem_x509_certificate((ferry_home / "share-tls" / "cert.pem").read_bytes())
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign


@pytest.mark.parametrize("email", [
    "x@-.-", "a..b@example.org", "a@example..org", "@example.org", "a@",
    "a@exa mple.org", "a@[127.0.0.1]", "a@example.org\u200b", "\u202ea@example.org",
])
async def test_bad_recipient_addresses_are_refused(svc, tmp_path, email):
    from backend.errors import ShareError

    with pytest.raises(ShareError, match="recipient"):
        await share_random(tmp_path, 100, recipients=[email])


@pytest.mark.parametrize(("field", "value"), [
    ("name", "invoice\u202eexe.pdf"),  # right-to-left override: shows as "invoicefdp.exe"
    ("name", "report\u200b.pdf"),  # zero-width space
    ("name", "\u200fmanual.pdf"),  # right-to-left mark
    ("name", "a\u2066b.pdf"),  # bidi isolate
    ("message", "please open \u200fthe file"),  # right-to-left mark
    ("message", "hidden\u2060joiner"),  # word joiner
    ("message", "filler \u3164 text"),  # Hangul filler renders blank
])
async def test_invisible_characters_are_refused_in_names_and_messages(svc, tmp_path, field,
                                                                     value):
    from backend.errors import ShareError

    with pytest.raises(ShareError, match="control character"):
        await share_random(tmp_path, 100, **{field: value})
    assert await ShareClient().list() == []


async def test_ordinary_international_text_is_still_accepted(svc, tmp_path):
    created, _ = await share_random(tmp_path, 100, name="Bericht für Dr. Müller – 日本.pdf",
                              message="Hello,\n\tthe scans are attached. Ça va?",
                              recipients=["dr.jones@example.org"])
    assert created["share"]["name"] == "Bericht für Dr. Müller – 日本.pdf"
