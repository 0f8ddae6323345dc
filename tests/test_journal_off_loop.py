"""The engine writes the transfer journal on its journal thread, never on the event loop
(backend/transfers/engine.py ``_j``): another process holding the journal's write lock delays
the transfer, not the TUI. Before, every journal write ran on the loop with a 15 s busy
timeout, so the loop froze for as long as the other process held the lock."""

from __future__ import annotations

import asyncio
import sys
import time

from backend.transfers import JobSpec
from backend.transfers.journal import default_path
from tests.transfer_helpers import make_engine, sha256_of, write_random

HOLD = 2.0

LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


async def test_a_locked_journal_does_not_freeze_the_event_loop(ferry_home, sftp_server, tmp_path):
    """Another process takes the journal's write lock for 2 s while a job runs: the loop keeps
    ticking (max gap < 200 ms), the job waits for the lock and then completes intact."""
    remote = sftp_server.root
    want = {f"f{i}.bin": write_random(remote / "in" / f"f{i}.bin", 1_000_000, seed=i)
            for i in range(8)}
    engine = make_engine(lambda: sftp_server.site("lab"))
    await engine.start()
    gaps: list[float] = []
    stop = asyncio.Event()
    running = asyncio.Event()
    engine.subscribe(lambda e: running.set() if e.kind == "file" else None)

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    out = tmp_path / "out"
    out.mkdir()
    job = await engine.submit(JobSpec("get", "lab", ["/in"], str(out), recursive=True,
                                      parallel=1))
    await asyncio.wait_for(running.wait(), 30)
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(default_path()), str(HOLD),
        stdout=asyncio.subprocess.PIPE)
    try:
        assert locker.stdout is not None
        assert (await locker.stdout.readline()).strip() == b"locked"
        locked_at = time.monotonic()
        done_when_locked = engine.job(job).files_done
        tick = asyncio.create_task(ticker())
        status = await asyncio.wait_for(engine.wait(job), 60)
        took = time.monotonic() - locked_at
        stop.set()
        await tick
    finally:
        await engine.stop()
        await locker.wait()
    assert done_when_locked < len(want), "the job ended before the lock was taken"
    assert took > HOLD / 2, "the other process's lock was not in the way"
    assert status.state == "done", status
    assert {p.name: sha256_of(p) for p in (out / "in").iterdir()} == want
    assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.2f} s"


async def test_forgetting_finished_jobs_does_not_freeze_the_event_loop(ferry_home, sftp_server,
                                                                       tmp_path):
    """The queue's ``C`` (forget finished jobs) is a journal write too: with another process
    holding the lock for 2 s, the loop keeps ticking while the forget waits, and then the
    finished job is gone from the queue. Before, ``forget_finished`` ran on the loop."""
    write_random(sftp_server.root / "in" / "one.bin", 100_000, seed=1)
    engine = make_engine(lambda: sftp_server.site("lab"))
    await engine.start()
    try:
        job = await engine.submit(JobSpec("get", "lab", ["/in/one.bin"], str(tmp_path)))
        assert (await asyncio.wait_for(engine.wait(job), 30)).state == "done"
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(default_path()), str(HOLD),
            stdout=asyncio.subprocess.PIPE)
        assert locker.stdout is not None
        assert (await locker.stdout.readline()).strip() == b"locked"
        gaps: list[float] = []
        forgetting = asyncio.ensure_future(engine.forget_finished())
        last = time.monotonic()
        while not forgetting.done():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        assert await forgetting == [job]
        await locker.wait()
    finally:
        await engine.stop()
    assert [j.id for j in engine.jobs()] == []
    assert len(gaps) > 50, "the forget did not wait for the other process's lock"
    assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.2f} s"
