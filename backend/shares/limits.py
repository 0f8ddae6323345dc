"""Connection limits for the share service: header, body and idle timeouts, and a cap on
concurrent connections per client address (docs/sharing.md "Timeouts and limits").

:class:`GuardedSite` listens like aiohttp's ``TCPSite`` but wraps each connection's protocol in
:class:`_Guard`, which

* refuses a connection over :attr:`Limits.max_connections_per_address` from one address with
  ``429`` and closes it (peers inside a trusted proxy network are exempt: the proxy carries
  many clients and should limit them itself);
* closes a connection that has not delivered a complete request header within
  :attr:`Limits.header_timeout` seconds of opening or of its previous request finishing
  (slowloris), or that sat idle that long between requests, and logs one line when a partial
  request was pending.

The app's ``track_requests`` middleware tells the guard when a request's header has been
parsed and when its handler has finished. Body and write timeouts are applied by the handlers
(``backend/shares/web.py``): :attr:`Limits.body_timeout` for reading a request body (per chunk
for uploads) and :attr:`Limits.write_timeout` for each piece of a download.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from backend.shares.proxy import ProxyConfig, normal_ip

log = logging.getLogger("ferry.shares.limits")

@dataclass(frozen=True)
class Limits:
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    write_timeout: float = 60.0
    max_connections_per_address: int = 64
    max_form_bytes: int = 16 * 1024  # recipient forms (password) are tiny


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection (only the public asyncio protocol API)."""

    def __init__(self, inner: asyncio.Protocol, site: GuardedSite) -> None:
        self._inner = inner
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._peer = "unknown"
        self._counted = False
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0  # requests whose handler is running
        self._partial = False  # bytes arrived since the last request finished
        self._refused = False

    # -- asyncio protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's connections have a full Transport (write, close), TLS ones too
        tcp = cast(asyncio.Transport, transport)
        self._transport = tcp
        peer = transport.get_extra_info("peername")
        self._peer = (normal_ip(peer[0]) if peer else None) or "unknown"
        site = self._site
        if not site.proxies.trusted(self._peer):
            count = site.connections.get(self._peer, 0)
            if count >= site.limits.max_connections_per_address:
                site.note_refused(self._peer)
                self._refused = True
                tcp.write(b"HTTP/1.1 429 Too Many Requests\r\n"
                                      b"Connection: close\r\nRetry-After: 5\r\n"
                                      b"Content-Length: 0\r\n\r\n")
                tcp.close()
                return
            site.connections[self._peer] = count + 1
            self._counted = True
        site.guards[transport] = self
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._active:
            self._partial = True
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        site = self._site
        if self._transport is not None:
            site.guards.pop(self._transport, None)
        if self._counted:
            self._counted = False
            left = site.connections.get(self._peer, 1) - 1
            if left > 0:
                site.connections[self._peer] = left
            else:
                site.connections.pop(self._peer, None)
        if not self._refused:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- request tracking (called by the middleware) ------------------------------------
    def request_started(self) -> None:
        self._active += 1
        self._partial = False
        self._disarm()

    def request_finished(self) -> None:
        self._active = max(0, self._active - 1)
        if not self._active:
            self._partial = False
            self._arm()

    # -- header / idle timer -------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._site.limits.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._active or self._transport is None or self._transport.is_closing():
            return
        if self._partial:
            log.warning("dropped slow client %s: no complete request header within %.0f s",
                        self._peer, self._site.limits.header_timeout)
        self._transport.close()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections go through :class:`_Guard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: Limits,
                 proxies: ProxyConfig, guards: dict[Any, Any], ssl_context: Any = None,
                 backlog: int = 256) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port = host, port
        self.limits = limits
        self.proxies = proxies
        self.connections: dict[str, int] = {}
        self.guards = guards  # transport -> _Guard, shared with the app's middleware
        self._refused_log: dict[str, float] = {}
        self.on_refused: Callable[[str], None] | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    def note_refused(self, peer: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._refused_log.get(peer, -1e9) >= 60:
            self._refused_log[peer] = now
            log.warning("refused a connection from %s: over %d concurrent connections", peer,
                        self.limits.max_connections_per_address)
            if len(self._refused_log) > 10000:
                self._refused_log.clear()
        if self.on_refused is not None:
            self.on_refused(peer)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            lambda: _Guard(server(), self), self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog, reuse_address=True,
        )
        if self._server.sockets:
            self._port = self._server.sockets[0].getsockname()[1]
