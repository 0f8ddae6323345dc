"""Encryption at rest: file-to-file encrypt and decrypt of 1 GiB against ``cp`` of the same file.

Prints wall time, MiB/s and the ratio to ``cp`` measured in the same run (target: >= 0.5x),
plus the peak resident memory sampled during each operation, to show memory stays flat.
``encrypt_file``/``decrypt_file`` fsync their output before renaming it into place, so ``cp``
is shown both alone and followed by ``sync FILE`` (the fair reference).

Run: ``.venv/bin/python -m bench crypto`` (size: ``FERRY_BENCH_CRYPTO_MIB``, default 1024).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from backend.crypto.container import decrypt_file, encrypt_file

MIB = 1 << 20


class PeakRss:
    """Samples this process's RSS every 5 ms while active."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _timed(fn: Callable[[], object]) -> tuple[float, int, int]:
    os.sync()  # start every operation with no dirty pages left by the previous one
    with PeakRss() as rss:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
    return elapsed, rss.peak, rss.peak - rss.start


def _make_source(path: Path, size_mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as fh:
        for i in range(size_mib):
            fh.write(block[i % 4096 :] + block[: i % 4096])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(8 * MIB)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def main() -> None:
    size_mib = int(os.environ.get("FERRY_BENCH_CRYPTO_MIB", "1024"))
    rounds = int(os.environ.get("FERRY_BENCH_ROUNDS", "3"))
    key = os.urandom(32)
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-crypto-", dir=os.environ.get("TMPDIR")))
    try:
        src = work / "study.bin"
        _make_source(src, size_mib)
        # warm the page cache the same way for every contender
        subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)
        copy, sealed, out = work / "copy.bin", work / "study.bin.ferry", work / "out.bin"
        ops: list[tuple[str, Path, Callable[[], object]]] = [
            ("cp", copy, lambda: subprocess.run(["cp", str(src), str(copy)], check=True)),
            ("cp + sync FILE", copy, lambda: subprocess.run(
                ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", str(src), str(copy)],
                check=True)),
            ("ferry encrypt_file", sealed, lambda: encrypt_file(src, sealed, key=key)),
            ("ferry decrypt_file", out, lambda: decrypt_file(sealed, out, key=key)),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in ops}
        peaks: dict[str, int] = dict.fromkeys(times, 0)
        growth: dict[str, int] = dict.fromkeys(times, 0)
        for _ in range(rounds):  # interleaved, so disk writeback noise hits everyone alike
            for name, target, fn in ops:
                if target.exists():  # decrypt (after encrypt) reads this round's sealed file
                    target.unlink()
                secs, peak, grew = _timed(fn)
                times[name].append(secs)
                peaks[name] = max(peaks[name], peak)
                growth[name] = max(growth[name], grew)

        same = _sha256(src) == _sha256(out)
        overhead = sealed.stat().st_size - src.stat().st_size
        print(f"{size_mib} MiB file in {work.parent}, {os.cpu_count()} cores, median of"
              f" {rounds} interleaved rounds; round trip identical: {same};"
              f" ciphertext overhead {overhead} bytes")
        print(f"{'operation':<20} {'median s':>8} {'best s':>7} {'MiB/s':>6} {'vs cp':>6}"
              f" {'vs cp+sync':>10} {'peak RSS (growth)':>18}")
        med = {name: statistics.median(ts) for name, ts in times.items()}
        for name, ts in times.items():
            is_python = name.startswith("ferry")
            rss_txt = (f"{peaks[name] / MIB:6.1f} MiB (+{growth[name] / MIB:4.1f})"
                       if is_python else f"{'-':>18}")
            print(f"{name:<20} {med[name]:8.2f} {min(ts):7.2f} {size_mib / med[name]:6.0f}"
                  f" {med['cp'] / med[name]:5.2f}x {med['cp + sync FILE'] / med[name]:9.2f}x"
                  f" {rss_txt}")
        print("ratios: speed relative to the reference (higher is better; target >= 0.5x)."
              " Peak RSS is the whole Python process; growth is above its RSS when the"
              " operation started.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
