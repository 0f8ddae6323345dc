"""A WAN emulator for benchmarks: a TCP proxy on 127.0.0.1 adding one-way delay each way.

``python -m bench.wan LISTEN_PORT TARGET_PORT DELAY_SECONDS`` (e.g. 0.02 for 40 ms RTT). Data is
forwarded as fast as it arrives, only later: bandwidth is not limited, so what the delay costs
is exactly what a long fat network costs a windowed protocol. It runs as its own process so the
benchmarked client keeps its CPU (this machine has 2 cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time

CHUNK = 256 * 1024


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if dst.is_closing():  # the far end went away: drop what is still in flight
                break
            dst.write(data)
            if dst.transport.get_write_buffer_size() > 8 * CHUNK:
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.write_eof()

    task = asyncio.ensure_future(deliver())
    try:
        while data := await src.read(CHUNK):
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((time.monotonic() + delay, b""))
    with contextlib.suppress(ConnectionError, OSError):
        await task


async def serve(listen_port: int, target_port: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_w, delay), _pipe(up_r, writer, delay))
        for w in (writer, up_w):
            with contextlib.suppress(Exception):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def start(listen_port: int, target_port: int, delay: float) -> subprocess.Popen:
    """Start the emulator in its own process; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.wan", str(listen_port), str(target_port), str(delay)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the WAN emulator did not start")
    return proc


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
