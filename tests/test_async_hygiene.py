"""Async hygiene (docs/architecture.md): a cancelled caller stays cancelled, the copier's
workers run in a TaskGroup that still raises the first real error, and the umask is read once
instead of being set to 0 while helper threads create files."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.errors import TransferError
from backend.tasks import cancel_and_wait
from backend.transfers import JobSpec
from backend.transfers.copier import run_all
from tests.proxies import Proxy
from tests.transfer_helpers import make_engine, write_random

ROOT = Path(__file__).resolve().parent.parent


def _sources() -> list[Path]:
    return sorted([*(ROOT / "backend").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])


def _names(node: ast.AST) -> set[str]:
    return {n.attr if isinstance(n, ast.Attribute) else n.id
            for n in ast.walk(node) if isinstance(n, ast.Attribute | ast.Name)}


def test_no_suppress_of_base_exception_or_cancelled_error() -> None:
    bad = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and "suppress" in _names(node.func)
                    and {"BaseException", "CancelledError"} & set().union(
                        *(_names(a) for a in node.args))):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, f"suppress(BaseException / CancelledError) swallows the caller's cancel: {bad}"


def test_the_umask_is_never_set_while_running() -> None:
    """``os.umask`` may run at import (before threads) or around a socket bind in the agent,
    never inside the copier's functions."""
    tree = ast.parse((ROOT / "backend/transfers/copier.py").read_text())
    functions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 and f.name != "_read_umask"]
    calls = [n.lineno for f in functions for n in ast.walk(f)
             if isinstance(n, ast.Call) and "umask" in _names(n.func)]
    assert calls == []


def test_umask_is_read_from_the_process() -> None:
    code = ("import os; os.umask(0o027); from backend.transfers import copier;"
            " print(oct(copier.UMASK))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "0o27"


async def test_cancel_and_wait_keeps_the_callers_cancellation() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # cleanup that takes a while
            raise

    inner = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    caller = asyncio.ensure_future(cancel_and_wait(inner))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    await asyncio.wait([inner])
    assert inner.cancelled()


async def test_run_all_raises_the_first_failure_itself_and_cancels_the_rest() -> None:
    cancelled: list[int] = []

    async def slow(n: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise TransferError("disk full")

    with pytest.raises(TransferError, match="disk full"):
        await run_all([slow(1), fails(), slow(2)])
    assert sorted(cancelled) == [1, 2]
    await run_all([])


async def test_a_cancelled_pause_caller_stays_cancelled(ferry_home, sftp_server, tmp_path) -> None:
    """engine.pause waits for the job to stop; cancelling the caller meanwhile (the TUI closing)
    used to be swallowed by suppress(BaseException), and the caller went on as if not cancelled.
    A slow link (tests/proxies.py) makes stopping the job take a while."""
    write_random(sftp_server.root / "big.bin", 40_000_000, seed=3)
    with Proxy(sftp_server.port, rate=2_000_000) as slow:
        engine = make_engine(lambda: sftp_server.site("lab", port=slow.port))
        await engine.start()
        progressed = asyncio.Event()
        engine.subscribe(lambda e: progressed.set() if e.kind == "progress" else None)
        try:
            job = await engine.submit(JobSpec("get", "lab", ["/big.bin"], str(tmp_path)))
            await asyncio.wait_for(progressed.wait(), 30)
            pausing = asyncio.ensure_future(engine.pause(job))
            while engine.journal.job(job).state != "paused":  # pause() asked the job to stop
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # and now waits for it to settle
            assert not pausing.done()
            pausing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pausing
            assert pausing.cancelled()
            assert engine.journal.job(job).state == "paused"
        finally:
            await engine.stop()
