"""The share service's aiohttp app: recipient pages under ``/s/`` and the admin API under ``/api/``.

Recipient side (no JavaScript, strict CSP, autoescaped HTML):

* ``GET  /s/<token>``            the download page (password form), or 404/410/429;
* ``POST /s/<token>/download``   ``password=...``: streams the file (``curl -d password=PW``);
  from the HTML form (``browser=1``) it sets a short-lived signed ticket cookie and redirects
  to ``GET /s/<token>/download``, so a browser can pause and resume the download;
* both download forms honour ``Range: bytes=N-[M]`` and ``bytes=-N`` (one range; a multi-range
  request gets the whole file); ``HEAD`` answers the headers only and uses no allowance;
  a download counts once every byte of the file has been delivered to that link.

Admin API (JSON, ``Authorization: Bearer <token>`` from ``$FERRY_HOME/share-admin.token``):
``GET /api/health``, ``POST /api/shares/validate``, ``POST /api/shares`` (raw body = the file,
options in the ``Ferry-Share-Options`` header as base64url JSON), ``GET /api/shares``,
``GET /api/shares/{id}``, ``POST /api/shares/{id}/revoke``, ``POST /api/shares/{id}/extend``,
``POST /api/shares/{id}/recipients``, ``POST /api/purge``, ``GET /api/events?since=ID&wait=S``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import re
import socket
import struct
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from backend.errors import FerryError, ShareError
from backend.shares import notify, pages
from backend.shares.limits import Limits
from backend.shares.policy import parse_duration
from backend.shares.proxy import LOOPBACK, ProxyConfig
from backend.shares.service import CHUNK, Download, LinkError, ShareService
from backend.units import human_size

log = logging.getLogger("ferry.shares.web")

SERVICE_KEY = web.AppKey("share_service", ShareService)
ADMIN_TOKEN = web.AppKey("admin_token", str)
OPTIONS = web.AppKey("options", dict)
TICKET_COOKIE = "ferry_dl"
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)
_BIG = 10**19  # any number longer than 19 digits is past the end of every file
_TOKEN_RE = r"[A-Za-z0-9_\-]{20,100}" # noqa: S105  (a URL pattern, not a secret)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    service: ShareService, admin_token: str, *, trust_proxy: bool = False,
    trusted_proxies: list[str] | tuple[str, ...] = (), proxy_header: str = "x-forwarded-for",
    smtp: notify.SmtpSettings | None = None, limits: Limits | None = None,
) -> web.Application:
    """The app. ``trusted_proxies`` (CIDRs) are the peers whose forwarding header is read;
    ``trust_proxy`` (the old flag) means the loopback networks."""
    nets = list(trusted_proxies) + (list(LOOPBACK) if trust_proxy else [])
    limits = limits or Limits()
    app = web.Application(middlewares=[_track_requests, _security_headers, _admin_auth],
                          client_max_size=limits.max_form_bytes)
    app[SERVICE_KEY] = service
    app[ADMIN_TOKEN] = admin_token
    app[OPTIONS] = {
        "proxies": ProxyConfig.build(nets, proxy_header),
        "limits": limits,
        "guards": {},  # transport -> connection guard (backend/shares/limits.py)
        "smtp": smtp,
        "tasks": set(),
        "closing": asyncio.Event(),  # set on shutdown: long polls answer at once
    }
    routes = [
        ("GET", "/", _index),
        ("GET", f"/s/{{token:{_TOKEN_RE}}}", recipient_page),
        ("POST", f"/s/{{token:{_TOKEN_RE}}}/download", download_post),
        ("GET", f"/s/{{token:{_TOKEN_RE}}}/download", download_get),
        ("GET", "/api/health", api_health),
        ("POST", "/api/shares/validate", api_validate),
        ("POST", "/api/shares", api_create),
        ("GET", "/api/shares", api_list),
        ("GET", "/api/shares/{id}", api_show),
        ("POST", "/api/shares/{id}/revoke", api_revoke),
        ("POST", "/api/shares/{id}/extend", api_extend),
        ("POST", "/api/shares/{id}/recipients", api_add_recipient),
        ("POST", "/api/purge", api_purge),
        ("GET", "/api/events", api_events),
    ]
    for method, path, handler in routes:
        if method == "GET":
            app.router.add_get(path, handler, expect_handler=_expect)
        else:
            app.router.add_route(method, path, handler, expect_handler=_expect)
    # everything else (unknown paths, other methods) also goes through _expect, not aiohttp's
    app.router.add_route("*", "/{tail:.*}", _not_found, expect_handler=_expect)
    return app


async def _expect(request: web.Request) -> None:
    """``Expect: 100-continue`` as aiohttp does it, but an unknown value is a plain 417
    (aiohttp's own handler echoes the value and fails with a 500 on non-UTF-8 bytes)."""
    expect = request.headers.get("Expect", "")
    if request.version != (1, 1):
        return
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return
    raise web.HTTPExpectationFailed(text="unsupported Expect header")


# -- middlewares ----------------------------------------------------------------------------
@web.middleware
async def _track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection guard a request is being handled (its header timer stops)."""
    guard = request.app[OPTIONS]["guards"].get(request.transport)
    if guard is None:
        return await handler(request)
    guard.request_started()
    try:
        return await handler(request)
    finally:
        guard.request_finished()


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/api/") or exc.status < 400:
            raise
        resp = _html(exc.status, pages.message_page(exc.reason, exc.reason))
    if not resp.prepared:
        _apply_headers(resp)
    return resp


def _apply_headers(resp: web.StreamResponse) -> None:
    for k, v in pages.SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)


@web.middleware
async def _admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    given = request.headers.get("Authorization", "")
    expected = "Bearer " + request.app[ADMIN_TOKEN]
    given_bytes = given.encode("utf-8", "surrogateescape")  # any header value, never a 500
    if not hmac.compare_digest(given_bytes, expected.encode()):
        return _json({"error": "admin token missing or wrong"}, status=401)
    try:
        return await handler(request)
    except LinkError as exc:
        return _json({"error": exc.message}, status=exc.status)
    except FerryError as exc:
        return _json({"error": exc.message, "hint": exc.hint}, status=400)


# -- helpers ----------------------------------------------------------------------------------
def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=str))


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    resp = web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers=headers)
    _apply_headers(resp)
    return resp


def _redirect(location: str) -> web.Response:
    resp = web.Response(status=303, headers={"Location": location})
    _apply_headers(resp)
    return resp


def client_address(request: web.Request) -> str:
    """The client IP: the peer's, or a trusted proxy's header (backend/shares/proxy.py)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address: str = request.app[OPTIONS]["proxies"].client(peer[0] if peer else None,
                                                          request.headers)
    return address


async def _read_form(request: web.Request) -> Any:
    """The request's form within the body timeout; a slow or oversized body is refused."""
    limits: Limits = request.app[OPTIONS]["limits"]
    try:
        async with asyncio.timeout(limits.body_timeout):
            return await request.post()
    except TimeoutError:
        log.warning("dropped slow client %s: request body not received within %.0f s",
                    client_address(request), limits.body_timeout)
        raise web.HTTPRequestTimeout() from None
    except ValueError:
        raise web.HTTPBadRequest(reason="unreadable form") from None


def _link_error_page(exc: LinkError) -> web.Response:
    titles = {404: "Link not found", 410: "File no longer available", 429: "Too many attempts",
              403: "Wrong password"}
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return _html(exc.status, pages.message_page(titles.get(exc.status, "Error"), exc.message),
                 headers)


def _content_disposition(name: str) -> str:
    name = name.replace("/", "_").replace("\\", "_")
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name)}"


def _is_secure(request: web.Request) -> bool:
    return request.secure or request.app[SERVICE_KEY].public_url.startswith("https:")


# -- recipient side ---------------------------------------------------------------------------
async def _not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


async def _index(request: web.Request) -> web.Response:
    return _html(200, pages.message_page("Ferry", "Open the link you were sent."))


async def recipient_page(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    token = request.match_info["token"]
    try:
        share, _ = service.lookup(token, client_address(request))
    except LinkError as exc:
        return _link_error_page(exc)
    return _html(200, _download_page(request, share, ""))


def _download_page(request: web.Request, share: Any, error: str) -> str:
    return pages.download_page(
        name=share.name, size=human_size(share.size),
        expires=share.expires_at.strftime("%Y-%m-%d %H:%M"), message=share.message,
        password=share.password_hash is not None, error=error,
        action=f"/s/{request.match_info['token']}/download",
    )


async def download_post(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    token = request.match_info["token"]
    address = client_address(request)
    form = await _read_form(request)
    password = form.get("password", "")
    password = password if isinstance(password, str) else ""
    browser = form.get("browser") == "1"
    try:
        d = await service.authenticate(token, password, address)
    except LinkError as exc:
        if browser and exc.status == 403 and exc.share is not None:
            return _html(403, _download_page(request, exc.share, exc.message))
        return _link_error_page(exc)
    if browser:
        resp = _redirect(f"/s/{token}/download")
        resp.set_cookie(
            TICKET_COOKIE, service.issue_ticket(d), max_age=3600, path=f"/s/{token}",
            httponly=True, secure=_is_secure(request), samesite="Strict",
        )
        return resp
    return await _send(request, d, address)


async def download_get(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    token = request.match_info["token"]
    address = client_address(request)
    try:
        share, recipient = service.lookup(token, address)
        d = None
        if share.password_hash is None:
            d = Download(share, recipient)
        elif TICKET_COOKIE in request.cookies:
            d = service.check_ticket(token, request.cookies[TICKET_COOKIE], address)
    except LinkError as exc:
        return _link_error_page(exc)
    if d is None:
        return _redirect(f"/s/{token}")
    return await _send(request, d, address)


def _hard_close(transport: asyncio.Transport | None) -> None:
    """Drop a connection NOW: with SO_LINGER 0 the kernel discards what it still holds to
    send (megabytes on a fast link) and resets the connection, so a cancelled download
    stops arriving at once instead of draining the socket buffer."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _number(text: str) -> int:
    return int(text) if len(text) <= 19 else _BIG


def _parse_range(request: web.Request, d: Download) -> bool:
    """Apply a ``Range`` header to ``d``; False if it cannot be satisfied (416).

    One range of ASCII digits (``bytes=N-``, ``bytes=N-M``, ``bytes=-N``); anything else,
    including a multi-range request, is ignored and the whole file is sent (RFC 9110 allows
    a server to ignore Range)."""
    header = request.headers.get("Range")
    if not header:
        return True
    etag = _etag(d)
    if_range = request.headers.get("If-Range")
    if if_range and if_range != etag:
        return True
    m = _RANGE.fullmatch(header.strip())
    size = d.share.size
    if not m or (not m.group(1) and not m.group(2)):
        return True  # unsupported (multi-range...): send the whole file
    if m.group(1):
        start = _number(m.group(1))
        end = _number(m.group(2)) if m.group(2) else size - 1
    else:
        start, end = max(0, size - _number(m.group(2))), size - 1
        if _number(m.group(2)) == 0:
            return False
    end = min(end, size - 1)
    if start > end or start >= size:
        return False
    d.start, d.end = start, end
    return True


def _etag(d: Download) -> str:
    return f'"{d.share.id}-{d.share.sha256[:16]}"'


def _download_response(d: Download) -> web.StreamResponse:
    ranged = d.start > 0 or d.end >= 0
    resp = web.StreamResponse(status=206 if ranged else 200)
    resp.content_type = "application/octet-stream"
    resp.content_length = d.last - d.start + 1
    resp.headers["Content-Disposition"] = _content_disposition(d.share.name)
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["ETag"] = _etag(d)
    if ranged:
        resp.headers["Content-Range"] = f"bytes {d.start}-{d.last}/{d.share.size}"
    _apply_headers(resp)
    return resp


async def _send(request: web.Request, d: Download, address: str) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    limits: Limits = request.app[OPTIONS]["limits"]
    if not _parse_range(request, d):
        return web.Response(status=416, headers={"Content-Range": f"bytes */{d.share.size}"})
    if request.method == "HEAD":  # headers only: no slot, no bytes, nothing counted
        resp = _download_response(d)
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    try:
        service.begin_download(d)  # the slot and the bytes are reserved before any byte
    except LinkError as exc:
        return _link_error_page(exc)
    try:
        try:
            stream = await service.open_stream(d)  # a bad blob is found before any header
        except LinkError as exc:
            return _link_error_page(exc)
        transport = request.transport
        d.cancel = lambda: _hard_close(transport)
        if d.cancelled:  # revoked while the blob was being opened
            stream.close()
            return _link_error_page(LinkError("this file has been deleted", status=410))
        resp = _download_response(d)
        try:
            await resp.prepare(request)
            async for piece in stream:
                if d.cancelled:
                    break
                async with asyncio.timeout(limits.write_timeout):
                    await resp.write(piece)
                d.sent += len(piece)
            if not d.cancelled:
                await resp.write_eof()
        except TimeoutError:
            log.warning("dropped slow client %s: a download of share %s made no progress for "
                        "%.0f s", address, d.share.id, limits.write_timeout)
            _hard_close(request.transport)
        except ConnectionError:
            pass  # the recipient went away: a partial download, recorded below
        except FerryError as exc:
            log.error("download of share %s failed: %s", d.share.id, exc)
            _hard_close(request.transport)
        finally:
            stream.close()
        if d.cancelled:
            _hard_close(request.transport)
        return resp
    finally:
        counted = service.finish_download(d, address)
        if counted:
            _after_download(request.app, d)


def _after_download(app: web.Application, d: Download) -> None:
    service = app[SERVICE_KEY]
    smtp = app[OPTIONS]["smtp"]
    if d.share.notify and smtp is not None and smtp.notify_to:
        msg = notify.notice_email(
            smtp, smtp.notify_to, d.share.id, d.recipient.email or "the link holder",
            service.clock().strftime("%Y-%m-%d %H:%M"),
        )
        _spawn(app, _send_mail(service, smtp, msg, d.share.id, "notice"))
    refreshed = service.store.get_share(d.share.id)
    if refreshed is not None and refreshed.status(service.clock()) == "exhausted":
        _spawn(app, service.purge())


def _spawn(app: web.Application, coro: Awaitable[Any]) -> None:
    tasks: set[asyncio.Task[Any]] = app[OPTIONS]["tasks"]
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _send_mail(service: ShareService, smtp: notify.SmtpSettings, msg: Any,
                     share_id: str, kind: str) -> str | None:
    try:
        await notify.send(smtp, msg)
        service._audit("share.email_sent", actor="ferry-service", share=share_id, kind=kind,
                       to=msg["To"])
        return None
    except FerryError as exc:
        service._audit("share.email_failed", actor="ferry-service", share=share_id, kind=kind,
                       to=msg["To"], error=exc.message)
        return exc.message


# -- admin API --------------------------------------------------------------------------------
async def api_health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json({"ok": True, "public_url": service.public_url})


def _options_from(request: web.Request, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ShareError("share options must be a JSON object")
    try:
        return {
            "name": str(raw["name"]),
            "size": int(raw["size"]),
            "recipients": [str(e) for e in raw.get("recipients") or []],
            "expires": parse_duration(raw["expires"]) if raw.get("expires") else None,
            "max_downloads": (
                int(raw["max_downloads"]) if raw.get("max_downloads") is not None else None
            ),
            "password": raw.get("password"),
            "generate_password": bool(raw.get("generate_password")),
            "message": str(raw.get("message") or ""),
            "notify": bool(raw.get("notify")),
            "sender": str(raw.get("sender") or ""),
        }
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ShareError(f"bad share options: {exc}") from None


async def api_validate(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    opts = _options_from(request, await _body(request))
    service.validate(**opts)
    if opts["notify"] and request.app[OPTIONS]["smtp"] is None:
        raise ShareError("--notify needs SMTP settings in smtp.toml on the share service")
    return _json({"ok": True})


async def api_create(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    header = request.headers.get("Ferry-Share-Options", "")
    try:
        raw = json.loads(base64.urlsafe_b64decode(
            header.encode("ascii") + b"=" * (-len(header) % 4)))
    except (ValueError, RecursionError):
        raise ShareError("missing or unreadable Ferry-Share-Options header") from None
    opts = _options_from(request, raw)
    send_links = bool(raw.get("send_links"))
    smtp = request.app[OPTIONS]["smtp"]
    if send_links and smtp is None:
        raise ShareError("--send-links needs SMTP settings in smtp.toml on the share service")
    created = await service.create_share(_body_chunks(request), **opts)
    result = created.public()
    if send_links and smtp is not None:
        errors = []
        for link in created.links:
            if not link["email"]:
                continue
            msg = notify.link_email(
                smtp, link["email"], link["url"],
                created.share.expires_at.strftime("%Y-%m-%d %H:%M"), created.share.sender,
                created.share.message, created.password is not None,
            )
            err = await _send_mail(service, smtp, msg, created.share.id, "link")
            if err:
                errors.append(err)
        result["email_errors"] = errors
    return _json(result, status=201)


async def _body_chunks(request: web.Request) -> Any:
    """The upload body, each chunk within the body timeout (an idle upload is dropped)."""
    limits: Limits = request.app[OPTIONS]["limits"]
    while True:
        try:
            async with asyncio.timeout(limits.body_timeout):
                chunk = await request.content.read(CHUNK)
        except TimeoutError:
            log.warning("dropped slow upload from %s: no data for %.0f s",
                        client_address(request), limits.body_timeout)
            raise ShareError("the upload stalled; nothing was shared") from None
        if not chunk:
            return
        yield chunk


async def api_list(request: web.Request) -> web.Response:
    return _json([s.public() for s in request.app[SERVICE_KEY].list_shares()])


async def api_show(request: web.Request) -> web.Response:
    return _json(request.app[SERVICE_KEY].get_share(request.match_info["id"]).public())


async def _body(request: web.Request) -> dict[str, Any]:
    limits: Limits = request.app[OPTIONS]["limits"]
    try:
        async with asyncio.timeout(limits.body_timeout):
            data = await request.json()
    except TimeoutError:
        raise ShareError("the request body did not arrive in time") from None
    except (ValueError, RecursionError):
        raise ShareError("request body must be JSON") from None
    if not isinstance(data, dict):
        raise ShareError("request body must be a JSON object")
    return data


async def api_revoke(request: web.Request) -> web.Response:
    data = await _body(request) if request.can_read_body else {}
    share = await request.app[SERVICE_KEY].revoke(
        request.match_info["id"], actor=str(data.get("actor") or "")
    )
    return _json(share.public())


async def api_extend(request: web.Request) -> web.Response:
    data = await _body(request)
    share = request.app[SERVICE_KEY].extend(
        request.match_info["id"], parse_duration(str(data.get("expires", ""))),
        actor=str(data.get("actor") or ""),
    )
    return _json(share.public())


async def api_add_recipient(request: web.Request) -> web.Response:
    data = await _body(request)
    link = request.app[SERVICE_KEY].add_recipient(
        request.match_info["id"], str(data.get("email", "")), actor=str(data.get("actor") or "")
    )
    return _json(link, status=201)


async def api_purge(request: web.Request) -> web.Response:
    return _json({"purged": await request.app[SERVICE_KEY].purge()})


async def api_events(request: web.Request) -> web.Response:
    """Share events (audit rows ``share.*``) after ``since``; waits up to ``wait`` s for one."""
    service = request.app[SERVICE_KEY]
    try:
        since = int(request.query.get("since", "0"))
        wait = min(60.0, float(request.query.get("wait", "0")))
    except ValueError:
        raise ShareError("since must be an event id and wait a number of seconds") from None
    closing: asyncio.Event = request.app[OPTIONS]["closing"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        rows = await asyncio.to_thread(service.audit.query, "share.*", since, None, None)
        if rows or loop.time() >= deadline or closing.is_set():
            return _json([r.as_dict() for r in rows[:500]])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), 0.5)
