"""Property test: arbitrary requests to the share service never get a 5xx or a traceback.

Hypothesis drives the recipient pages, the download endpoints (forms, ranges, cookies) and the
admin API (with and without the token, arbitrary JSON) over raw sockets on 127.0.0.1, so header
values, paths and bodies are exactly what a hostile client could send."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import ServiceHandle, start_share_service, stop_share_service

PASSWORD = "correct horse battery"
SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture
async def target(ferry_home: Path, tmp_path: Path) -> AsyncIterator[tuple[ServiceHandle, str]]:
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(20_000))
    created = await ShareClient().create(local_file_source(src), name="f.bin", size=20_000,
                                         password=PASSWORD, max_downloads=0)
    for limiter in ("addresses", "pair_limiter"):  # keep 403/404s coming, not 429s
        if hasattr(handle.service, limiter):
            getattr(handle.service, limiter).failure = lambda key: 0.0
    try:
        yield handle, created["links"][0]["url"].split("/", 3)[3]
    finally:
        await stop_share_service(handle)


_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                     blacklist_characters="\r\n\x7f"), max_size=80)
_header_name = st.sampled_from([
    "Range", "If-Range", "Cookie", "Authorization", "Content-Type", "X-Forwarded-For",
    "Forwarded", "Accept", "Ferry-Share-Options", "Transfer-Encoding", "Expect",
])
_range = st.one_of(
    _header_text,
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(0, 10**30) | st.just(""),
              st.integers(0, 10**30) | st.just("")),
    st.builds(lambda n: f"bytes=-{n}", st.integers(0, 10**25)),
    st.just("bytes=0-1,5-9"),
)
_segment = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FFF), max_size=30)


def _request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("transfer-encoding",)]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


async def _send(url: str, raw: bytes) -> bytes:
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        await asyncio.wait_for(reader.read(), 10)
        return head
    finally:
        writer.close()


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


@SETTINGS
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    which=st.sampled_from(["page", "download", "odd"]),
    segment=_segment,
    rng=_range,
    headers=st.lists(st.tuples(_header_name, _header_text), max_size=4),
    form=st.dictionaries(st.sampled_from(["password", "browser", "x", "password[]"]),
                         st.text(max_size=40), max_size=3),
    right_password=st.booleans(),
)
async def test_recipient_side_never_answers_5xx(target, caplog, method, which, segment, rng,
                                                headers, form, right_password):
    handle, token_path = target
    caplog.clear()
    if which == "page":
        path = "/" + token_path
    elif which == "download":
        path = "/" + token_path + "/download"
    else:
        path = "/s/" + urllib.parse.quote(segment, safe="") + "/download"
    if right_password and "password" in form:
        form["password"] = PASSWORD
    body = urllib.parse.urlencode(form).encode() if method == "POST" else b""
    hdrs = [("Range", rng), *headers]
    if method == "POST":
        hdrs.append(("Content-Type", "application/x-www-form-urlencoded"))
    head = await _send(handle.url, _request(method, path, hdrs, body))
    assert _status(head) < 500, (head, path, hdrs)
    _no_tracebacks(caplog)


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=3),
    max_leaves=8,
)
_option_keys = st.sampled_from(["name", "size", "recipients", "expires", "max_downloads",
                                "password", "message", "notify", "sender", "email", "actor"])


@SETTINGS
@given(
    endpoint=st.sampled_from([
        ("GET", "/api/health"), ("GET", "/api/shares"), ("GET", "/api/shares/{id}"),
        ("POST", "/api/shares/validate"), ("POST", "/api/shares"),
        ("POST", "/api/shares/{id}/extend"), ("POST", "/api/shares/{id}/recipients"),
        ("GET", "/api/events"), ("POST", "/api/purge"), ("GET", "/api/shares/{id}/x"),
    ]),
    share_id=_segment,
    authorised=st.booleans(),
    payload=st.one_of(st.dictionaries(_option_keys, _json_value, max_size=5), _json_value),
    raw_body=st.binary(max_size=40),
    use_raw=st.booleans(),
    query=st.dictionaries(st.sampled_from(["since", "wait"]), _header_text, max_size=2),
    headers=st.lists(st.tuples(_header_name, _header_text), max_size=3),
    raw_options=_header_text,
)
async def test_admin_api_never_answers_5xx(target, caplog, endpoint, share_id, authorised,
                                           payload, raw_body, use_raw, query, headers,
                                           raw_options):
    handle, _ = target
    caplog.clear()
    method, path = endpoint
    path = path.replace("{id}", urllib.parse.quote(share_id, safe="") or "x")
    if query:
        path += "?" + urllib.parse.urlencode(query)
    if path.startswith("/api/events"):
        path += ("&" if "?" in path else "?") + "wait=0"
    body = b""
    if method == "POST":
        body = raw_body if use_raw else json.dumps(payload).encode()
    hdrs = [h for h in headers if h[0] != "Authorization"]
    if authorised:
        hdrs.append(("Authorization", f"Bearer {handle.admin_token}"))
    if path == "/api/shares" and method == "POST":
        encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        hdrs.append(("Ferry-Share-Options", raw_options if use_raw else encoded))
    head = await _send(handle.url, _request(method, path, hdrs, body))
    assert _status(head) < 500, (head, path, body[:100])
    _no_tracebacks(caplog)
