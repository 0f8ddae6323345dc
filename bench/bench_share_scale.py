"""Share service scale-out benchmark: embedded vs PostgreSQL + SeaweedFS, 1 vs 3 instances.

Each scenario starts ``ferry serve`` process(es) under throwaway homes (sharing the server key
and admin token), creates one share with ``FERRY_BENCH_SCALE_RECIPIENTS`` recipients (default
50), and has every recipient download their own link at once, spread round-robin over the
instances. Size per download: ``FERRY_BENCH_SCALE_MIB`` (default 100; ``BENCH_QUICK=1``: 8).

Printed per scenario: aggregate MiB/s, time to first byte p50/p95 (it includes the argon2
password check of every request: 64 MiB, at most 4 at once per instance), and the PostgreSQL
statements per download (``pg_stat_statements``, from the first request to the last byte, the
instances' background checks included). The throwaway PostgreSQL cluster and SeaweedFS are
those of the tests (tests/scaleout_parts.py); all traffic is on loopback. On a 2-core machine the
instances, SeaweedFS and PostgreSQL share the same cores: see docs/sharing.md "Capacity".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK") == "1"
PASSWORD = "bench password 42"


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def _one(url: str, want_hash: bool) -> tuple[float, float, int, str | None]:
    t0 = time.perf_counter()
    ttfb, n = 0.0, 0
    hasher = hashlib.sha256() if want_hash else None
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.post(
            url + "/download", data={"password": PASSWORD}) as resp:
        resp.raise_for_status()
        async for chunk in resp.content.iter_chunked(1 << 20):
            if not n:
                ttfb = time.perf_counter() - t0
            n += len(chunk)
            if hasher:
                hasher.update(chunk)
    return ttfb, time.perf_counter() - t0, n, hasher.hexdigest() if hasher else None


def _statements(cluster: object, dbname: str, reset: bool = False) -> int:
    """Statements run in ``dbname`` since the last reset (pg_stat_statements, counted as each
    statement ends: no statistics-flush delay)."""
    import psycopg

    conninfo = cluster.admin_conninfo()  # type: ignore[attr-defined]
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            con.execute("SELECT pg_stat_statements_reset()")
            return 0
        row = con.execute(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s", (dbname,)).fetchone()
    return int(row[0])


async def scenario(label: str, instances: int, size_mib: int, recipients: int,
                   pg: object | None, weed: object | None,
                   password: bool = True) -> dict[str, float | str]:
    from backend.shares.client import ShareClient, local_file_source
    from backend.shares.keys import ServerKey
    from backend.shares.server import load_or_create_admin_token
    from tests.scaleout_parts import _wait_port, free_port

    with tempfile.TemporaryDirectory(prefix="ferry-bench-scale-") as tmp:
        root = Path(tmp)
        homes = [root / f"home{i}" for i in range(instances)]
        for h in homes:
            h.mkdir(mode=0o700)
            (h / "share-policy.toml").write_text(
                f'max_size = "2GiB"\nmax_recipients = {recipients}\n'
                f"password_required = {'true' if password else 'false'}\n")
        ServerKey.load_or_create(homes[0] / "share-server.key")
        token = load_or_create_admin_token(homes[0] / "share-admin.token")
        for h in homes[1:]:
            for name in ("share-server.key", "share-admin.token"):
                shutil.copy2(homes[0] / name, h / name)
        env = {k: v for k, v in os.environ.items() if k != "FERRY_HOME"}
        extra: list[str] = []
        dbname = ""
        if pg is not None and weed is not None:
            dbname = pg.new_database()  # type: ignore[attr-defined]
            bucket = weed.new_bucket()  # type: ignore[attr-defined]
            extra = ["--database", pg.url(dbname),  # type: ignore[attr-defined]
                     "--blob-store", weed.blob_url(bucket)]  # type: ignore[attr-defined]
            env.update(weed.env())  # type: ignore[attr-defined]
            env["FERRY_DATABASE_PASSWORD"] = pg.password  # type: ignore[attr-defined]
        ports = [free_port() for _ in homes]
        procs = [subprocess.Popen(
            [sys.executable, "-m", "tui", "serve", "--listen", f"127.0.0.1:{port}", *extra],
            cwd=ROOT, env={**env, "FERRY_HOME": str(h)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL) for h, port in zip(homes, ports, strict=True)]
        try:
            for port, proc in zip(ports, procs, strict=True):
                _wait_port(port, 60, proc)
            src = root / "big.bin"
            block = os.urandom(1 << 20)
            with open(src, "wb") as fh:
                for _ in range(size_mib):
                    fh.write(block)
            expected = hashlib.sha256(src.read_bytes()).hexdigest()
            client = ShareClient(url=f"http://127.0.0.1:{ports[0]}", token=token, timeout=600)
            emails = [f"r{i}@example.org" for i in range(recipients)]
            created = await client.create(local_file_source(src), name="big.bin",
                                          size=src.stat().st_size, recipients=emails,
                                          max_downloads=0,
                                          password=PASSWORD if password else None)
            links = [link["url"].rsplit("/s/", 1)[1] for link in created["links"]]
            if dbname:
                _statements(pg, dbname, reset=True)
            t0 = time.perf_counter()
            results = await asyncio.gather(*(
                _one(f"http://127.0.0.1:{ports[i % instances]}/s/{tok}", i == 0)
                for i, tok in enumerate(links)
            ))
            wall = time.perf_counter() - t0
            statements = _statements(pg, dbname) if dbname else 0
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(15)
    assert all(r[2] == size_mib << 20 for r in results), "a download came back short"
    assert results[0][3] == expected, "downloaded bytes differ from the source"
    total = sum(r[2] for r in results)
    return {
        "label": label, "password": password, "instances": instances,
        "mib_s": total / wall / (1 << 20),
        "wall_s": wall, "ttfb_p50": statistics.median(r[0] for r in results),
        "ttfb_p95": _pct([r[0] for r in results], 95),
        "statements_per_download": statements / len(results) if dbname else float("nan"),
    }


async def run(size_mib: int, recipients: int) -> list[dict[str, float | str]]:
    from tests.scaleout_parts import start_postgres, start_seaweedfs

    rows = []
    for password in (True, False):  # with the argon2 check, then the data path alone
        rows.append(await scenario("embedded (SQLite + folder)", 1, size_mib, recipients,
                                   None, None, password))
    settings = "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    with start_postgres(settings) as pg, start_seaweedfs() as weed:
        for password in (True, False):
            for n in (1, 3):
                rows.append(await scenario("PostgreSQL + SeaweedFS", n, size_mib, recipients,
                                           pg, weed, password))
    return rows


def main() -> None:
    size = int(os.environ.get("FERRY_BENCH_SCALE_MIB", "8" if QUICK else "100"))
    recipients = int(os.environ.get("FERRY_BENCH_SCALE_RECIPIENTS", "50"))
    rows = asyncio.run(run(size, recipients))
    print(f"{recipients} recipients at once, {size} MiB each, loopback, {os.cpu_count()} cores"
          + (" (BENCH_QUICK=1)" if QUICK else ""))
    print(f"  {'store':<28} {'pw':>3} {'inst':>4} {'MiB/s':>7} {'wall s':>7} {'TTFB p50':>9} "
          f"{'TTFB p95':>9} {'PG stmt/dl':>10}")
    for r in rows:
        per = r["statements_per_download"]
        shown = "-" if per != per else f"{per:.1f}"  # NaN: no database
        pw = "yes" if r["password"] else "no"
        print(f"  {r['label']:<28} {pw:>3} {r['instances']:>4} {r['mib_s']:>7.0f} "
              f"{r['wall_s']:>7.1f} "
              f"{float(r['ttfb_p50']) * 1000:>7.0f}ms {float(r['ttfb_p95']) * 1000:>7.0f}ms "
              f"{shown:>10}")


if __name__ == "__main__":
    main()
