"""Share service load test: N concurrent downloads of one large share over loopback.

Runs ``ferry serve`` as a separate process (so its memory is measured alone) under a throwaway
FERRY_HOME, creates a share of ``FERRY_BENCH_SHARE_MIB`` MiB (default 100) and downloads it
``FERRY_BENCH_SHARE_CONCURRENCY`` times at once (default 50). Prints throughput, time to first
byte and total time (p50/p95) and the service's peak RSS. Loopback only; bounded by size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def _one(session: aiohttp.ClientSession, url: str, password: str,
               want_hash: bool) -> tuple[float, float, int, str | None]:
    t0 = time.perf_counter()
    ttfb = 0.0
    n = 0
    hasher = hashlib.sha256() if want_hash else None
    async with session.post(url + "/download", data={"password": password}) as resp:
        resp.raise_for_status()
        async for chunk in resp.content.iter_chunked(1 << 20):
            if not n:
                ttfb = time.perf_counter() - t0
            n += len(chunk)
            if hasher:
                hasher.update(chunk)
    return ttfb, time.perf_counter() - t0, n, hasher.hexdigest() if hasher else None


async def _peak_rss(proc: psutil.Process, stop: asyncio.Event, box: list[int]) -> None:
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss
        except psutil.Error:
            return
        box[0] = max(box[0], rss)
        await asyncio.sleep(0.1)


async def run(size_mib: int, concurrency: int) -> dict[str, float]:
    from backend.shares.client import ShareClient, local_file_source

    with tempfile.TemporaryDirectory(prefix="ferry-bench-share-") as tmp:
        home = Path(tmp) / "home"
        os.environ["FERRY_HOME"] = str(home)
        (home).mkdir()
        (home / "share-policy.toml").write_text('max_size = "2GiB"\n')
        src = Path(tmp) / "big.bin"
        block = os.urandom(1 << 20)
        with open(src, "wb") as fh:
            for _ in range(size_mib):
                fh.write(block)
        expected = hashlib.sha256(src.read_bytes()).hexdigest()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "tui", "serve", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, env=dict(os.environ), stderr=subprocess.DEVNULL,
        )
        try:
            info = home / "state" / "share-service.json"
            for _ in range(200):
                if info.exists():
                    break
                await asyncio.sleep(0.05)
            client = ShareClient()
            t0 = time.perf_counter()
            created = await client.create(local_file_source(src), name="big.bin",
                                          size=src.stat().st_size, max_downloads=0)
            create_s = time.perf_counter() - t0
            url, password = created["links"][0]["url"], created["password"]
            proc = psutil.Process(server.pid)
            idle_rss = proc.memory_info().rss
            peak = [idle_rss]
            stop = asyncio.Event()
            watcher = asyncio.create_task(_peak_rss(proc, stop, peak))
            timeout = aiohttp.ClientTimeout(total=600)
            conn = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(timeout=timeout, connector=conn) as session:
                t0 = time.perf_counter()
                results = await asyncio.gather(*(
                    _one(session, url, password, i == 0) for i in range(concurrency)
                ))
                wall = time.perf_counter() - t0
            stop.set()
            await watcher
        finally:
            server.terminate()
            server.wait(10)
    total = sum(r[2] for r in results)
    assert all(r[2] == size_mib << 20 for r in results), "a download came back short"
    assert results[0][3] == expected, "downloaded bytes differ from the source"
    return {
        "size_mib": size_mib, "concurrency": concurrency, "create_s": create_s,
        "wall_s": wall, "throughput_mib_s": total / wall / (1 << 20),
        "ttfb_p50": statistics.median(r[0] for r in results), "ttfb_p95": _pct(
            [r[0] for r in results], 95),
        "total_p50": statistics.median(r[1] for r in results),
        "total_p95": _pct([r[1] for r in results], 95),
        "idle_rss_mib": idle_rss / (1 << 20), "peak_rss_mib": peak[0] / (1 << 20),
    }


def main() -> None:
    size = int(os.environ.get("FERRY_BENCH_SHARE_MIB", "100"))
    concurrency = int(os.environ.get("FERRY_BENCH_SHARE_CONCURRENCY", "50"))
    r = asyncio.run(run(size, concurrency))
    print(f"share of {r['size_mib']} MiB, {r['concurrency']} concurrent downloads (loopback)")
    print(f"  create (upload+encrypt): {r['create_s']:.2f} s "
          f"({r['size_mib'] / r['create_s']:.0f} MiB/s)")
    print(f"  all downloads: {r['wall_s']:.1f} s, aggregate {r['throughput_mib_s']:.0f} MiB/s")
    print(f"  time to first byte: p50 {r['ttfb_p50'] * 1000:.0f} ms, "
          f"p95 {r['ttfb_p95'] * 1000:.0f} ms")
    print(f"  per-download time: p50 {r['total_p50']:.1f} s, p95 {r['total_p95']:.1f} s")
    print(f"  service RSS: idle {r['idle_rss_mib']:.0f} MiB, peak {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
