"""DICOM benchmark: summarising a 2,000-file synthetic study, locally and over a 40 ms WAN.

Writes one synthetic study (backend/dicom/synthetic.py: 8 series of 250 instances, each about
100 KiB: a real header, a small image and padding, so a file is longer than the reader's first
read) and times, best of 3 with a warm page cache: the local summary (``read_local`` +
``summarise``: what ``ferry case inspect FOLDER`` does after start-up; target < 2 s) and the
Basic Profile check on the same headers. Then starts OpenSSH's sshd on loopback
(``tests.servers.start_sshd``) behind the WAN emulator (``bench.wan``: +20 ms each way) and
times the remote summary (``read_remote`` + ``summarise``, an open session: walk, then the
first 64 KiB of each file, :data:`backend.dicom.reader.PARALLEL` files in flight), reporting
the bytes fetched against the study's size. ``BENCH_QUICK=1``: 500 files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

QUICK = os.environ.get("BENCH_QUICK") == "1"
FILES = 500 if QUICK else 2000
SERIES = 8
LOCAL_TARGET = 2.0
WAN_DELAY = 0.020  # one way: 40 ms RTT
PADDING = 92_000


def _write(folder: Path) -> int:
    from backend.dicom.synthetic import SeriesSpec, StudySpec, write_study

    per = FILES // SERIES
    spec = StudySpec(series=tuple(SeriesSpec(i, f"SERIES {i}", per) for i in range(1, SERIES + 1)),
                     rows=64, padding=PADDING)
    return len(write_study(folder, spec).files)


def _best(fn, rounds: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _local(folder: Path) -> None:
    from backend.dicom import checker, reader
    from backend.dicom.summary import summarise

    def summary():  # type: ignore[no-untyped-def]
        headers = reader.read_local(folder)
        return headers, summarise(headers)

    took, (headers, result) = _best(summary)  # type: ignore[misc]
    studies = result.studies
    instances = sum(s.instances for s in studies)
    print(f"local summary   {instances} files: {took:.2f} s (target < {LOCAL_TARGET:.0f} s: "
          f"{took / LOCAL_TARGET:.2f}x of it, {'met' if took < LOCAL_TARGET else 'NOT met'})",
          flush=True)
    took_check, report = _best(lambda: checker.check(headers))  # type: ignore[arg-type]
    print(f"local check     {instances} files: {took_check:.2f} s "
          f"({len(report.findings)} attribute kinds found)", flush=True)  # type: ignore[union-attr]


def _remote(folder: Path, work: Path) -> None:
    import asyncssh

    from backend import ssh
    from backend.dicom import reader
    from backend.dicom.summary import summarise
    from bench import wan
    from tests.servers import free_port, start_sshd

    client_key = asyncssh.generate_private_key("ssh-ed25519")
    sshd = start_sshd(work / "sshd", client_key)
    port = free_port()
    proc = wan.start(port, sshd.port, WAN_DELAY)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    try:
        site = sshd.site("bench-wan", port=port)

        async def run(parallel: int) -> tuple[float, float, int, int]:
            start = time.perf_counter()
            async with ssh.sftp_session(site) as (_conn, sftp):
                connected = time.perf_counter()
                headers = await reader.read_remote(sftp, str(folder), parallel=parallel)
                summary = summarise(headers)
                done = time.perf_counter()
            return (done - connected, connected - start, headers.bytes_read,
                    sum(s.instances for s in summary.studies))

        for parallel in (32, reader.PARALLEL, 128):
            took, connect, got, instances = asyncio.run(run(parallel))
            print(f"remote summary  {instances} files over 40 ms RTT, {parallel} in flight: "
                  f"{took:.2f} s after a {connect:.2f} s connect; read {got / 2**20:.1f} MiB "
                  f"of {total / 2**20:.0f} MiB ({got / total:.0%})", flush=True)
    finally:
        proc.terminate()
        proc.wait(5)
        sshd.stop()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-dicom-", dir=os.environ.get("BENCH_DIR")))
    try:
        folder = work / "study"
        start = time.perf_counter()
        count = _write(folder)
        print(f"wrote a {count}-file synthetic study in {time.perf_counter() - start:.1f} s",
              flush=True)
        _local(folder)
        _remote(folder, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
