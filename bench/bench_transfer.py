"""Transfer benchmark: Ferry against OpenSSH ``sftp`` on the same files in the same run.

Starts OpenSSH's sshd on loopback (``tests.servers.start_sshd``) and the WAN emulator
(``bench.wan``: +20 ms each way = 40 ms RTT, bandwidth unlimited) in its own process, then
times, for each workload (``wan-file``, ``wan-folder``, ``wan-noexec``: a 256 MiB upload to an
sftp-only chroot account with no exec, where Ferry verifies by reading the server's copy back,
``loopback``), ``sftp -b`` (pinned host key, ``-i key``, ``-P port``; it verifies
nothing) and Ferry's engine twice: with its default ``--verify sha256`` (the server hashes
every file; temp name and rename for uploads, fsync before publishing downloads) and with
``--verify size`` (size + last 64 KiB re-read), and prints times and ratios with the targets
(judged on the default). Both sides are timed from process start to exit: Ferry runs as the
real ``ferry get`` / ``ferry put`` command in a fresh process, as sftp does (the sshd is a saved
site of the bench's ``FERRY_HOME``, its host key pinned), so imports, connecting, planning and
exiting are counted; the project's modules are compiled to bytecode first, as ``pip install``
does (with ``PYTHONDONTWRITEBYTECODE`` set, every run would otherwise compile them again: ~60 ms
a run). Source files are written just before and read from a
warm page cache by both. Memory: a child process downloads and uploads one sparse file over
loopback and reports its peak RSS.

``BENCH_QUICK=1`` uses smaller sizes (64 MiB instead of 256 MiB, 256 MiB instead of 1 GiB,
200 files instead of 2000, 1 GiB sparse instead of 10 GiB). ``BENCH_ONLY=wan-down,...``
picks workloads by name.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the project (backend/, tui/)
MiB = 1024 * 1024
QUICK = os.environ.get("BENCH_QUICK") == "1"
WAN_DELAY = 0.020  # one way
BIG_WAN = (64 if QUICK else 256) * MiB
BIG_LOCAL = (256 if QUICK else 1024) * MiB
FOLDER_FILES = 200 if QUICK else 2000
FOLDER_FILE_SIZE = 190_000
SPARSE = (1024 if QUICK else 10 * 1024) * MiB
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))  # single-file workloads: medians of N


@dataclass
class Row:
    name: str
    sftp: float
    ferry: float  # --verify sha256 (the default; targets are judged on it)
    target: float
    ferry_size: float = 0.0  # --verify size
    runs: dict[str, list[float]] | None = None  # every round, when there were several

    @property
    def ratio(self) -> float:
        return self.sftp / self.ferry if self.ferry else 0.0


def _fill(path: Path, size: int, seed: int) -> None:
    block = os.urandom(MiB) if seed == 0 else (bytes([seed % 251]) * 64 + os.urandom(64)) * (
        MiB // 128)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, MiB)
            fh.write(block[:n])
            left -= n


def _make_folder(path: Path, count: int) -> None:
    path.mkdir(parents=True)
    for i in range(count):
        (path / f"IM{i:05}.dcm").write_bytes(os.urandom(FOLDER_FILE_SIZE))


class Bench:
    def __init__(self, work: Path) -> None:
        import compileall

        import asyncssh

        from tests.servers import start_sshd

        for package in ("backend", "tui"):
            compileall.compile_dir(ROOT / package, quiet=1)
        self.work = work
        self.saved_sites: set[int] = set()  # ports saved as sites of the ferry command
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.sshd = start_sshd(work / "sshd", self.client_key)
        self.kh = work / "known_hosts"
        self.kh.write_text(f"[127.0.0.1]:{self.sshd.port} {self.sshd.host_key_line}\n")
        from tests.servers import free_port

        self.wan_port = free_port()
        from bench import wan

        self.wan = wan.start(self.wan_port, self.sshd.port, WAN_DELAY)
        self.kh.write_text(
            f"[127.0.0.1]:{self.sshd.port} {self.sshd.host_key_line}\n"
            f"[127.0.0.1]:{self.wan_port} {self.sshd.host_key_line}\n"
        )
        self.sites: dict[int, Any] = {}  # port -> Site, for servers other than self.sshd
        self.noexec: Any = None
        self.noexec_wan: Any = None

    def start_noexec(self) -> int:
        """An sftp-only OpenSSH account (ChrootDirectory + ForceCommand internal-sftp: no
        exec, so Ferry verifies by read-back) behind its own 40 ms WAN emulator; its port."""
        from bench import wan
        from tests.matrix import start_openssh_kind
        from tests.servers import free_port

        self.noexec = start_openssh_kind("chroot", self.work / "noexec", self.client_key)
        port = free_port()
        self.noexec_wan = wan.start(port, self.noexec.port, WAN_DELAY)
        with open(self.kh, "a") as fh:
            fh.write(f"[127.0.0.1]:{port} {self.noexec.host_key_line}\n")
        self.sites[port] = self.noexec
        return port

    def close(self) -> None:
        for proc in (self.wan, self.noexec_wan):
            if proc is not None:
                proc.terminate()
                proc.wait()
        self.sshd.stop()
        if self.noexec is not None:
            self.noexec.stop()

    # -- OpenSSH sftp ---------------------------------------------------------------------
    def sftp(self, port: int, commands: list[str]) -> float:
        batch = self.work / "batch"
        batch.write_text("\n".join(commands) + "\n")
        argv = [
            "sftp", "-q", "-b", str(batch), "-i", str(self.sshd.client_key_path),
            "-P", str(port), "-o", f"UserKnownHostsFile={self.kh}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            f"{self.sites.get(port, self.sshd).user}@127.0.0.1",
        ]
        os.sync()  # neither side pays for the other's deferred writeback
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    # -- Ferry ----------------------------------------------------------------------------
    def ferry(self, port: int, direction: str, sources: list[str], dest: str,
              recursive: bool = False, verify: str = "sha256") -> float:
        """Run ``ferry get|put`` in a fresh process (like sftp); seconds from spawn to exit."""
        home = self.work / "home"
        site = f"bench{port}"
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "FERRY_HOME": str(home)}
        if port not in self.saved_sites:
            from backend.sites.store import SiteStore

            server = self.sites.get(port, self.sshd)
            SiteStore(home / "sites.toml").add(server.site(site, port=port))
            self.saved_sites.add(port)
        if direction == "get":
            paths = [f"{site}:{src}" for src in sources] + [dest]
        else:
            paths = [*sources, f"{site}:{dest}"]
        argv = [str(Path(sys.executable).with_name("ferry")), direction, *paths,
                "--on-conflict", "overwrite", "--verify", verify, *(["-r"] if recursive else [])]
        os.sync()
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    def ferry_in_process(self, port: int, direction: str, sources: list[str], dest: str,
                         recursive: bool = False, verify: str = "sha256") -> float:
        return asyncio.run(self._ferry(port, direction, sources, dest, recursive, verify))

    async def _ferry(self, port: int, direction: str, sources: list[str], dest: str,
                     recursive: bool, verify: str = "sha256") -> float:
        from backend import ssh
        from backend.transfers import JobSpec, TransferEngine

        site = self.sshd.site("bench", port=port)

        async def connector(name: str):  # type: ignore[no-untyped-def]
            return site, await ssh.connect(site)

        engine = TransferEngine(connector)
        await engine.start()
        try:
            start = time.perf_counter()
            job = await engine.submit(JobSpec(direction, "bench", sources, dest,  # type: ignore[arg-type]
                                              recursive=recursive, on_conflict="overwrite",
                                              verify=verify))  # type: ignore[arg-type]
            status = await engine.wait(job)
            took = time.perf_counter() - start
        finally:
            await engine.stop()
        if status.state != "done":
            raise RuntimeError(f"ferry {direction} failed: {status.error}")
        return took

    # -- workloads ------------------------------------------------------------------------
    def one_file(self, name: str, port: int, size: int, target: float) -> list[Row]:
        """One big file each way; ``BENCH_ROUNDS`` interleaved rounds, medians reported.

        Every copy is checked and deleted before the next run starts, so each run writes into
        pages the previous one freed (on this VM, first-touch of never-used guest memory costs
        ~2 s of system time per GiB and would land on whichever tool ran second)."""
        src_dir = self.work / f"{name}-src"
        src_dir.mkdir()
        src = src_dir / "big.bin"
        _fill(src, size, 0)
        rows = []
        for direction in ("down", "up"):
            out = self.work / f"{name}-{direction}"
            out.mkdir()
            verb = "get" if direction == "down" else "put"
            times: dict[str, list[float]] = {"sftp": [], "size": [], "sha256": []}
            for _ in range(ROUNDS):
                for tool in times:
                    copy = out / f"{tool}.bin"
                    if tool == "sftp":
                        took = self.sftp(port, [f"{verb} {src} {copy}"])
                    else:
                        took = self.ferry(port, verb, [str(src)], str(copy), verify=tool)
                    if not _same(copy, src):
                        raise RuntimeError(f"{name} {direction}: {tool}'s copy differs")
                    copy.unlink()
                    times[tool].append(took)
            med = {tool: statistics.median(ts) for tool, ts in times.items()}
            rows.append(Row(f"{name} {size // MiB} MiB {direction}load", med["sftp"],
                            med["sha256"],
                            target if direction == "down" or name == "loopback" else
                            (2.0 if name == "wan" else target), med["size"], times))
            shutil.rmtree(out)
        shutil.rmtree(src_dir)
        return rows

    def noexec_upload(self, size: int) -> list[Row]:
        """A big upload at 40 ms RTT to a server without exec: Ferry's default verification
        there re-reads the server's copy (sha256 by read-back); ``sftp`` verifies nothing.
        Target: still faster than ``sftp``."""
        port = self.start_noexec()
        src = self.work / "noexec-src.bin"
        _fill(src, size, 0)
        landed = self.noexec.root / "copy.bin"
        times: dict[str, list[float]] = {"sftp": [], "size": [], "sha256": []}
        for _ in range(ROUNDS):
            for tool in times:
                if tool == "sftp":
                    took = self.sftp(port, [f"put {src} {self.noexec.remote('copy.bin')}"])
                else:
                    took = self.ferry(port, "put", [str(src)], self.noexec.remote("copy.bin"),
                                      verify=tool)
                if not _same(landed, src):
                    raise RuntimeError(f"no-exec upload: {tool}'s copy differs")
                landed.unlink()
                times[tool].append(took)
        src.unlink()
        med = {tool: statistics.median(ts) for tool, ts in times.items()}
        return [Row(f"wan no-exec {size // MiB} MiB upload (read-back)", med["sftp"],
                    med["sha256"], 1.0, med["size"], times)]

    def folder(self, port: int, target: float) -> list[Row]:
        src = self.work / "study"
        _make_folder(src, FOLDER_FILES)
        rows = []
        for direction in ("down", "up"):
            a, b = self.work / f"f-sftp-{direction}", self.work / f"f-ferry-{direction}"
            a.mkdir()
            b.mkdir()
            verb = "get" if direction == "down" else "put"
            t_sftp = self.sftp(port, [f"{verb} -r {src} {a}/"])
            c = self.work / f"f-size-{direction}"
            c.mkdir()
            t_size = self.ferry(port, verb, [str(src)], str(c) + "/", recursive=True,
                                verify="size")
            t_ferry = self.ferry(port, verb, [str(src)], str(b) + "/", recursive=True)
            for copy in (b, c):
                if len(list((copy / "study").iterdir())) != FOLDER_FILES:
                    raise RuntimeError("ferry's folder copy is incomplete")
            rows.append(Row(f"wan {FOLDER_FILES} files x 190 KB {direction}load", t_sftp,
                            t_ferry, target, t_size))
            shutil.rmtree(a)
            shutil.rmtree(b)
            shutil.rmtree(c)
        shutil.rmtree(src)
        return rows

    def memory(self) -> str:
        src = self.work / "sparse.img"
        with open(src, "wb") as fh:
            fh.truncate(SPARSE)
        out = self.work / "sparse-out"
        out.mkdir()
        code = (
            "import resource,sys; from bench.bench_transfer import _child; "
            f"_child({self.sshd.port}, {str(src)!r}, {str(out)!r}, {str(self.work)!r})"
        )
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True)
        src.unlink()
        shutil.rmtree(out)
        return res.stdout.strip()


def _same(a: Path, b: Path) -> bool:
    import filecmp

    return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


def _child(port: int, src: str, out: str, work: str) -> None:
    """Runs in a fresh process: download then upload a sparse file, print peak RSS."""
    import pickle  # noqa: F401 - keep imports of the measured process minimal and explicit

    import asyncssh

    from tests.servers import SshdServer

    sshd_dir = Path(work) / "sshd"
    server = SshdServer(port=port, workdir=sshd_dir, host_key_path=sshd_dir /
                        "ssh_host_ed25519_key", client_key_path=sshd_dir / "id_client",
                        proc=None)  # type: ignore[arg-type]
    del asyncssh
    bench = Bench.__new__(Bench)
    bench.sshd = server
    start = time.perf_counter()
    t1 = bench.ferry_in_process(port, "get", [src], out + "/")
    t2 = bench.ferry_in_process(port, "put", [out + "/" + Path(src).name], out + "/back.img")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = os.path.getsize(src) / MiB
    print(f"sparse {size:.0f} MiB: download {t1:.1f}s, upload {t2:.1f}s; peak RSS "
          f"{rss:.0f} MiB (total {time.perf_counter() - start:.1f}s)")


def main() -> None:
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-", dir=os.environ.get("BENCH_DIR")))
    bench = Bench(work)
    rows: list[Row] = []
    notes: list[str] = []
    plan: list[tuple[str, Callable[[], list[Row]]]] = [
        ("wan-file", lambda: bench.one_file("wan", bench.wan_port, BIG_WAN, 3.0)),
        ("wan-folder", lambda: bench.folder(bench.wan_port, 15.0)),
        ("wan-noexec", lambda: bench.noexec_upload(BIG_WAN)),
        ("loopback", lambda: bench.one_file("loopback", bench.sshd.port, BIG_LOCAL, 0.9)),
    ]
    try:
        for name, run in plan:
            if only and name not in only:
                continue
            print(f"running {name}...", flush=True)
            rows += run()
            _table(rows)
        if not only or "memory" in only:
            print("running memory...", flush=True)
            notes.append(bench.memory())
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    print("\n## Transfers (BENCH_QUICK=1)" if QUICK else "\n## Transfers")
    _table(rows)
    for note in notes:
        print(note)


def _table(rows: list[Row]) -> None:
    print(f"{'workload':<36} {'sftp s':>7} {'ferry s':>8} {'ratio':>6} {'target':>7}  met"
          f"  {'--verify size':>13} {'ratio':>6}")
    for r in rows:
        met = "yes" if r.ratio >= r.target else "NO"
        size_ratio = r.sftp / r.ferry_size if r.ferry_size else 0.0
        print(f"{r.name:<36} {r.sftp:>7.2f} {r.ferry:>8.2f} {r.ratio:>5.2f}x {r.target:>6.1f}x"
              f"  {met:<3}  {r.ferry_size:>12.2f}s {size_ratio:>5.2f}x", flush=True)
        if r.runs and len(r.runs["sftp"]) > 1:
            print("    rounds: " + "; ".join(
                f"{tool} " + "/".join(f"{t:.2f}" for t in ts) for tool, ts in r.runs.items()))


if __name__ == "__main__":
    main()
