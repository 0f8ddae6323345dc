"""TUI benchmark: event-loop lag while a transfer runs at full speed, and folders of 10,000 and
200,000 entries.

Runs the real ``FerryApp`` headless (Textual's test driver, 120×40) against OpenSSH's sshd on
127.0.0.1 (a separate process, so the server's work is not counted as the app's lag), with
``$FERRY_HOME`` in a temporary folder.

* **Lag**: a task inside the running app sleeps 10 ms in a loop and records how late each
  wake-up is. Measured first with the app idle (the reference), then while the browser
  downloads one large file through the transfer engine at full loopback speed with the queue
  panel open. Target: p95 < 50 ms.
* **Folders**: the remote pane opens a folder of 10,000 files, then one of 200,000. Reported:
  the SFTP listing itself (the reference, 10,000 only), the time from the listing arriving to
  the listing being painted, and the peak RSS of the process (the app, not the server) once it
  is shown, beside the figures of the DataTable fork the listing used before
  (:data:`BEFORE`). Targets: 10,000 shown < 0.5 s; 200,000 shown < 3 s with a peak RSS
  < 150 MB.

``BENCH_QUICK=1`` transfers 256 MiB instead of 1 GiB; ``BENCH_TUI_FOLDERS=1`` measures only the
folders (no lag and transfer part).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
QUICK = os.environ.get("BENCH_QUICK") == "1"
BIG = (256 if QUICK else 1024) * MiB
FOLDER = 10_000
HUGE = 200_000
FOLDERS_ONLY = os.environ.get("BENCH_TUI_FOLDERS") == "1"
TICK = 0.010
# The same bench on the listing built on Textual's DataTable with its private structures
# written directly (before tui/widgets/listing_view.py), on this machine:
# entries -> (listing arrived -> painted in seconds, peak RSS in MB).
BEFORE: dict[int, tuple[float, float]] = {FOLDER: (0.187, 108.0), HUGE: (4.142, 395.0)}


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LagProbe:
    """Sleeps ``TICK`` in a loop on the app's event loop and records the lateness (s)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.samples.append(max(time.perf_counter() - start - TICK, 0.0))

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
        return self.samples


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples) or [0.0]
    p50 = statistics.median(ordered)
    p95 = ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)]
    return p50 * 1000, p95 * 1000, ordered[-1] * 1000


async def _until(pilot: Any, predicate: Any, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark condition not reached within {seconds} s")
        await pilot.pause(0.01)


async def run(work: Path) -> dict[str, Any]:
    import asyncssh

    from backend import remote, ssh
    from backend.sites.store import SiteStore
    from tests.servers import start_sshd
    from tui.app import FerryApp
    from tui.screens.browser import BrowserScreen

    client_key = asyncssh.generate_private_key("ssh-ed25519")
    served = work / "served"
    many = served / "bench" / "many"
    many.mkdir(parents=True)
    for i in range(FOLDER):
        (many / f"IM{i:05d}.dcm").touch()
    huge = served / "bench" / "huge"
    huge.mkdir()
    for i in range(HUGE):
        (huge / f"IM{i:06d}.dcm").touch()
    block = os.urandom(MiB)
    with open(served / "bench" / "big.raw", "wb") as fh:
        for _ in range(0 if FOLDERS_ONLY else BIG // MiB):
            fh.write(block)
    local = work / "local"
    local.mkdir()
    os.chdir(local)
    sshd = start_sshd(work / "sshd", client_key)
    top = str(served / "bench")
    SiteStore().add(sshd.site("bench", remote_dir=top))
    results: dict[str, Any] = {}
    try:
        async with ssh.sftp_session(sshd.site("bench-ref", remote_dir=top)) as (_c, sftp):
            start = time.perf_counter()
            listing = await remote.list_dir(sftp, f"{top}/many")
            results["sftp_list"] = time.perf_counter() - start
            assert len(listing.entries) == FOLDER

        app = FerryApp(start_site="bench")
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: isinstance(app.screen, BrowserScreen)
                         and app.screen.right.listed)
            screen: Any = app.screen
            right = screen.right
            probe = LagProbe()

            probe.start()
            await asyncio.sleep(2.0)
            results["idle"] = percentiles(probe.stop())

            results["rss_idle"] = peak_rss_mb()
            for name, count in (("many", FOLDER), ("huge", HUGE)):
                index = [e.name for e in right.rows].index(name)
                right.table.move_cursor(row=index)
                await pilot.pause()
                right.focus_table()
                await pilot.press("enter")
                await _until(pilot, lambda name=name: right.path == f"{top}/{name}"
                             and "shown" in right.timings)
                t = right.timings
                results[count] = {
                    "list": t["listed"] - t["requested"],
                    "show": t["shown"] - t["listed"],
                    "rss": peak_rss_mb(),
                    "rows": right.table.row_count,
                }
                await pilot.press("end")
                await pilot.press("backspace")
                await _until(pilot, lambda: right.path == top and right.listed)
            if FOLDERS_ONLY:
                return results

            # lag during a full-speed download
            index = [e.name for e in right.rows].index("big.raw")
            right.table.move_cursor(row=index)
            await pilot.pause()
            await pilot.press("t")  # queue panel open: progress is drawn while it runs
            right.focus_table()
            probe.start()
            started = time.perf_counter()
            await pilot.press("f5")
            await _until(pilot, lambda: app.engine.jobs()
                         and app.engine.jobs()[0].state in ("done", "failed"))
            elapsed = time.perf_counter() - started
            results["busy"] = percentiles(probe.stop())
            job = app.engine.jobs()[0]
            results["transfer_state"] = job.state
            results["transfer_rate"] = BIG / elapsed / MiB
    finally:
        sshd.stop()
    return results


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-tui-") as tmp:
        work = Path(tmp)
        os.environ["FERRY_HOME"] = str(work / "home")
        os.environ["FERRY_NONINTERACTIVE"] = "1"
        cwd = os.getcwd()
        try:
            r = asyncio.run(run(work))
        finally:
            os.chdir(cwd)
    if not FOLDERS_ONLY:
        idle, busy = r["idle"], r["busy"]
        print(f"event-loop lag (10 ms timer inside the app), download of {BIG // MiB} MiB, "
              f"state {r['transfer_state']}, {r['transfer_rate']:.0f} MiB/s")
        print(f"{'':24}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        print(f"{'idle (reference)':24}{idle[0]:>10.1f}{idle[1]:>10.1f}{idle[2]:>10.1f}")
        print(f"{'during transfer':24}{busy[0]:>10.1f}{busy[1]:>10.1f}{busy[2]:>10.1f}")
        verdict = "ok" if busy[1] < 50 else "MISSED"
        print(f"target p95 < 50 ms: {verdict}")
        print()
    print(f"folders (SFTP listing of {FOLDER:,} entries alone, the reference: "
          f"{r['sftp_list'] * 1000:.0f} ms; app idle peak RSS {r['rss_idle']:.0f} MB)")
    print(f"{'entries':>9}{'rows':>9}{'listed ms':>11}{'-> painted ms':>15}{'peak RSS MB':>13}"
          f"{'before: ms':>12}{'MB':>6}  target")
    for count, (limit, rss_limit) in ((FOLDER, (0.5, None)), (HUGE, (3.0, 150.0))):
        f = r[count]
        old = BEFORE.get(count)
        was = f"{old[0] * 1000:>12.0f}{old[1]:>6.0f}" if old else f"{'-':>12}{'-':>6}"
        ok = f["show"] < limit and (rss_limit is None or f["rss"] < rss_limit)
        goal = f"< {limit * 1000:.0f} ms" + (f", < {rss_limit:.0f} MB" if rss_limit else "")
        print(f"{count:>9,}{f['rows']:>9,}{f['list'] * 1000:>11.0f}{f['show'] * 1000:>15.0f}"
              f"{f['rss']:>13.0f}{was}  {goal}: {'ok' if ok else 'MISSED'}")

if __name__ == "__main__":
    main()
