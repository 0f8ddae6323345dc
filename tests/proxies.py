"""A TCP proxy on 127.0.0.1 for fault injection: cut the connection after N bytes (once),
and optionally slow traffic to a byte rate so a transfer can be interrupted mid-file.

It runs its own event loop in a thread, so it serves in-process asyncio tests and subprocess
tests alike::

    with Proxy(target_port, drop_after=2_000_000) as proxy:
        site = server.site(port=proxy.port)     # connections now go through the proxy
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

CHUNK = 64 * 1024


class Proxy:
    """Forward 127.0.0.1:``port`` -> 127.0.0.1:``target_port``."""

    def __init__(self, target_port: int, *, drop_after: int | None = None,
                 drops: int = 1, rate: float | None = None) -> None:
        self.target_port = target_port
        self.drop_after = drop_after  # bytes (both directions) on one connection before cutting
        self.drops_left = drops
        self.rate = rate  # bytes/s per direction per connection, None: unlimited
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.transferred = 0  # bytes forwarded, both directions, all connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> Proxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("proxy did not start")

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        cut = asyncio.Event()
        budget = None
        if self.drop_after is not None and self.drops_left > 0:
            self.drops_left -= 1
            budget = self.drop_after

        total = [0]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       limit: int | None) -> None:
            sent = 0
            started = time.monotonic()
            try:
                while not cut.is_set():
                    data = await src.read(CHUNK)
                    if not data:
                        break
                    total[0] += len(data)
                    self.transferred += len(data)
                    if limit is not None and total[0] >= limit:
                        if not cut.is_set():
                            self.cuts += 1
                            cut.set()
                            for w in (writer, up_w):  # wake the other pump: cut both ways now
                                w.transport.abort()
                        break
                    dst.write(data)
                    await dst.drain()
                    sent += len(data)
                    if self.rate:
                        ahead = sent / self.rate - (time.monotonic() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            except (ConnectionError, OSError):
                pass
            finally:
                cut.set()

        await asyncio.gather(pump(reader, up_w, budget), pump(up_r, writer, budget))
        for w in (writer, up_w):
            with contextlib.suppress(Exception):
                w.transport.abort()
            self._writers.discard(w)
