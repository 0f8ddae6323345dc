"""The agent benchmark: transfers through the Ferry agent against the same command run in its
own process (``--no-agent``), the TUI's event-loop lag while a full-speed transfer runs (in the
agent, and for reference in the TUI's own process), and the agent's memory (docs/agent.md).

Same servers as bench/bench_transfer.py (OpenSSH sshd on loopback, a 40 ms RTT WAN emulator).
Rows, each timed from process start to exit of ``ferry get|put`` (medians of
``BENCH_ROUNDS``, default 3, interleaved):

* ``ferry`` through the agent (the default: the command queues the job in the running agent
  and follows it) vs ``ferry --no-agent`` (the engine in the command's process); target: the
  agent within 5 % (ratio ≥ 0.95);
* TUI lag: a headless Ferry app attached to the agent while it moves a big file over loopback
  at full speed; a 5 ms ticker on the app's loop records how late each tick is (p50, p95,
  max). Target: p95 < 10 ms. The same with the engine inside the app, for reference;
* agent RSS idle (after start) and its peak while it moves the big file (``VmHWM``).

``BENCH_QUICK=1``: 64 MiB instead of 256 MiB over the WAN, 256 MiB instead of 1 GiB locally.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_transfer import BIG_LOCAL, BIG_WAN, Bench, MiB, _fill, _same

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
IDLE_RSS: list[float] = []  # the agent's, right after it started


def _ferry(bench: Bench, home: Path, port: int, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "FERRY_HOME": str(home)}
    env.pop("FERRY_NO_AGENT", None)
    cmd = [str(Path(sys.executable).with_name("ferry")), *argv]
    os.sync()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _save_site(bench: Bench, home: Path, port: int) -> str:
    from backend.sites.store import SiteStore

    name = f"bench{port}"
    SiteStore(home / "sites.toml").add(bench.sshd.site(name, port=port))
    return name


def _agent_pid(home: Path) -> int:
    pid_file = home / "state" / "agent" / "agent.pid"
    return int(pid_file.read_text().strip())


def _rss(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def transfer_rows(bench: Bench, home: Path) -> list[tuple[str, float, float]]:
    site = _save_site(bench, home, bench.wan_port)
    src_dir = bench.work / "agent-src"
    src_dir.mkdir()
    src = src_dir / "big.bin"
    _fill(src, BIG_WAN, 0)
    out = bench.work / "agent-out"
    out.mkdir()
    # the agent starts on the first command; not counted (tmux's server is not either)
    _ferry(bench, home, bench.wan_port, ["agent", "start"])
    time.sleep(0.5)
    IDLE_RSS.append(_rss(_agent_pid(home)))
    rows = []
    for direction in ("get", "put"):
        times: dict[str, list[float]] = {"agent": [], "no-agent": []}
        for _ in range(ROUNDS):
            for mode in times:
                copy = out / f"{mode}.bin"
                paths = [f"{site}:{src}", str(copy)] if direction == "get" else \
                    [str(src), f"{site}:{copy}"]
                extra = ["--no-agent"] if mode == "no-agent" else []
                took = _ferry(bench, home, bench.wan_port,
                              [direction, *paths, "--on-conflict", "overwrite", *extra])
                if not _same(copy, src):
                    raise RuntimeError(f"{direction} via {mode}: the copy differs")
                copy.unlink()
                times[mode].append(took)
        rows.append((f"wan {BIG_WAN // MiB} MiB {direction}", statistics.median(times["agent"]),
                     statistics.median(times["no-agent"])))
    shutil.rmtree(src_dir)
    shutil.rmtree(out)
    return rows


async def _lag_during(app: Any, job_spec: Any) -> tuple[list[float], float]:
    """Late ticks (ms) of a 5 ms ticker on the app's loop while ``job_spec`` runs."""
    lags: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while app.engine is None:
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        start = time.perf_counter()
        job = await app.engine.submit(job_spec)
        waiting = asyncio.ensure_future(app.engine.wait(job))
        while not waiting.done():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - before - 0.005) * 1000)
        status = await waiting
        took = time.perf_counter() - start
        if status.state != "done":
            raise RuntimeError(f"the TUI's transfer failed: {status.error}")
    return lags, took


def tui_lag(bench: Bench, home: Path) -> list[str]:
    from backend.transfers import JobSpec
    from tui.app import FerryApp

    site = _save_site(bench, home, bench.sshd.port)
    src = bench.work / "lag-src.bin"
    _fill(src, BIG_LOCAL, 0)
    out = bench.work / "lag-out"
    out.mkdir()
    lines = []
    pid = _agent_pid(home)
    for use_agent in (True, False):
        os.environ["FERRY_HOME"] = str(home)
        spec = JobSpec("get", site, [str(src)], str(out / "copy.bin"), on_conflict="overwrite")
        app = FerryApp(use_agent=use_agent)
        lags, took = asyncio.run(_lag_during(app, spec))
        if not _same(out / "copy.bin", src):
            raise RuntimeError("the TUI's copy differs")
        (out / "copy.bin").unlink()
        lags.sort()
        p50, p95 = lags[len(lags) // 2], lags[int(len(lags) * 0.95)]
        where = "in the agent" if use_agent else "in the TUI's process"
        target = "  target p95 < 10 ms: " + ("met" if p95 < 10 else "NOT met") if use_agent \
            else "  (reference)"
        lines.append(f"TUI loop lag, {BIG_LOCAL // MiB} MiB loopback download {where}: "
                     f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {lags[-1]:.1f} ms "
                     f"({len(lags)} ticks, {BIG_LOCAL / MiB / took:.0f} MiB/s){target}")
    peak = _rss(pid, "VmHWM")
    lines.append(f"agent RSS: idle {IDLE_RSS[0]:.0f} MiB after start; peak {peak:.0f} MiB "
                 "over every transfer above")
    src.unlink()
    shutil.rmtree(out)
    return lines


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-agent-", dir=os.environ.get("BENCH_DIR")))
    home = work / "home"
    bench = Bench(work)
    saved = os.environ.get("FERRY_HOME")
    os.environ.pop("FERRY_NO_AGENT", None)
    try:
        rows = transfer_rows(bench, home)
        print(f"{'workload':<22} {'agent s':>8} {'--no-agent s':>13} {'ratio':>6}  target")
        for name, via_agent, here in rows:
            ratio = here / via_agent
            print(f"{name:<22} {via_agent:>8.2f} {here:>13.2f} {ratio:>5.2f}x  ≥ 0.95x "
                  f"{'met' if ratio >= 0.95 else 'NOT met'}", flush=True)
        for line in tui_lag(bench, home):
            print(line, flush=True)
    finally:
        _ferry(bench, home, bench.sshd.port, ["agent", "stop"])
        if saved is None:
            os.environ.pop("FERRY_HOME", None)
        else:
            os.environ["FERRY_HOME"] = saved
        bench.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
