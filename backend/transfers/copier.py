"""Moving the bytes of one file, fast and safely: pipelined SFTP reads/writes, temp names,
resume from a verified offset, verification, and the file-exists policy.

Downloads keep ``READ_REQUESTS`` reads of the server's largest allowed block in flight (a WAN's
16 MiB window makes that pay; big files add a second lane once it opens), hand the blocks as
they become contiguous to an :class:`~backend.transfers.sink.OrderedSink` that writes them in
order into a private temp file (``<name><temp_suffix>``, created ``O_EXCL|O_NOFOLLOW`` 0600 in
the target folder) and hashes them, and rename onto the final name only after verification.
Uploads start on one lane and let more join as they open (OpenSSH gives each SFTP channel a
2 MiB window), writing blocks at their offsets into ``<name><temp_suffix>`` on the server,
give it the source's mtime where the server allows, and rename it (``posix-rename@openssh.com``
where it replaces; elsewhere the old file is renamed aside first and put back if a step fails:
:func:`_publish_remote`). A same-size destination is compared (server SHA-256, else its tail)
before ``resume``/``size`` skip it. The *verified offset* is the contiguous prefix known
written; it is checkpointed so a resumed file continues there (decrypting downloads: the last
whole segment whose plaintext is written). Block sizes never exceed the server's
``limits@openssh.com``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import posixpath
import secrets
import stat
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from backend.crypto.container import Decryptor, resume_point_for_plaintext
from backend.errors import FerryError, IntegrityError, TransferError, UsageError
from backend.fsutil import open_exclusive, safe_local_mode
from backend.names import display_name
from backend.remote import read_bytes, sftp_errors, translate_sftp_error
from backend.sites.model import Site
from backend.sites.profile import upload_lanes
from backend.sshtuning import round_trip
from backend.tasks import cancel_and_wait
from backend.transfers.crypt import Cipher
from backend.transfers.journal import FileRow
from backend.transfers.pool import Lane, SitePool
from backend.transfers.readback import REFUSED, remote_sha256
from backend.transfers.sink import OrderedSink
from backend.transfers.streamhash import StreamingHash, start_streaming
from backend.transfers.verify import RemoteHasher, tail_matches

log = logging.getLogger("ferry.transfers")

MAX_BLOCK = 256 * 1024
READ_REQUESTS = 64
WRITE_REQUESTS_PER_LANE = 16
SPLIT_UPLOAD_AT = 8 * 1024 * 1024  # files at least this big upload over several lanes
UPLOAD_LANES = 4
SPLIT_DOWNLOAD_AT = 32 * 1024 * 1024  # ... and download over several lanes
DOWNLOAD_LANES = 2  # 4 measured slower here: each channel costs sshd a login shell
# ... but only where one channel's window limits: on a link this short (loopback, a LAN) one
# lane moves a file as fast with less CPU (1 GiB over loopback: 3.33 s vs 3.44 s with two)
SHORT_LINK_RTT = 0.002
THREADED_AT = 8 * 1024 * 1024  # downloads this big write and hash on a helper thread
AHEAD = 64 * 1024 * 1024  # bytes completed past the verified offset before workers wait
FSYNC = True


class Progress(Protocol):
    """The engine's per-file counters (O(1) per call; called on every block)."""

    def add(self, n: int) -> None: ...
    def checkpoint(self, offset: int) -> None: ...
    def restart(self, offset: int) -> None: ...


@dataclass
class Outcome:
    state: str  # done | skipped
    destination: str
    sha256: str | None = None
    verify: str | None = None
    note: str | None = None


@dataclass
class Plan:
    """What one file transfer needs besides the journal row."""

    site: Site
    pool: SitePool
    hasher: RemoteHasher
    on_conflict: str
    verify: str
    cipher: Cipher | None = None


class _Window:
    """Tracks the contiguous prefix while blocks complete out of order."""

    def __init__(self, start: int) -> None:
        self.contig = start
        self._done: dict[int, tuple[int, bytes | None]] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def complete(self, offset: int, length: int, data: bytes | None) -> list[bytes | None]:
        self._done[offset] = (length, data)
        ready: list[bytes | None] = []
        while self.contig in self._done:
            n, chunk = self._done.pop(self.contig)
            self.contig += n
            ready.append(chunk)
        if ready:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        return ready

    async def wait_until_below(self, offset: int) -> None:
        while offset - self.contig > AHEAD:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut


async def run_all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run workers together (an :class:`asyncio.TaskGroup`): the first failure cancels the
    rest and is raised as itself, not as the group's ExceptionGroup, so callers catch and
    report the error they always did. A cancelled caller cancels every worker."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as errors:
        raise _first_error(errors) from None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception a group collected (the one that cancelled the others)."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


def block_for(lanes: list[Lane], writing: bool) -> int:
    limit = min((ln.max_write if writing else ln.max_read) for ln in lanes)
    return max(4096, min(MAX_BLOCK, limit))


def renamed(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def should_skip(policy: str, src_size: int, src_mtime: float | None,
                dst_size: int, dst_mtime: float | None) -> bool:
    """For an existing destination: does ``policy`` say leave it alone?"""
    if policy == "skip":
        return True
    if policy == "newer":
        # whole seconds: SFTPv3 keeps no fraction, so an upload's kept mtime (:func:`_keep_mtime`)
        # is the source's truncated; comparing fractions would call every such copy "older"
        return src_mtime is None or dst_mtime is None or int(src_mtime) <= int(dst_mtime)
    if policy in ("size", "resume"):
        return src_size == dst_size
    return False  # overwrite (rename never reaches here)


def _hash_prefix_local(path: str, length: int) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        left = length
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                raise TransferError(f"{display_name(path)} is shorter than its recorded offset")
            digest.update(chunk)
            left -= len(chunk)
    return digest


# -- downloads -------------------------------------------------------------------------------


async def download(plan: Plan, row: FileRow, progress: Progress,
                   save: Callable[[FileRow], Awaitable[None]]) -> Outcome:
    """Fetch ``row.src`` into ``row.dst`` (a safe, already-joined local path)."""
    pool, site = plan.pool, plan.site
    lane = await pool.lane()
    # stat and open go out together (one round trip, not two); the handle is used only once
    # the stat said "regular file", and dropped with its lane otherwise (opening a FIFO can
    # leave that server process blocked)
    stat_task = asyncio.ensure_future(lane.sftp.stat(row.src))
    open_task = asyncio.ensure_future(lane.sftp.open(row.src, "rb", block_size=0))
    try:
        with sftp_errors(row.src):
            attrs = await stat_task
        if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR and not stat.S_ISREG(
            attrs.permissions or 0
        ):
            pool.retire(lane)
            raise TransferError(f"{display_name(row.src)} is not a regular file")
        size = int(attrs.size or 0)
        mtime = float(attrs.mtime) if attrs.mtime is not None else None
        if (size, mtime) != (row.size, row.mtime):
            row.offset = 0  # the source changed since it was planned: start over
        row.size, row.mtime = size, mtime
        if attrs.permissions is not None:
            row.mode = attrs.permissions & 0o7777

        final = Path(row.dst)
        cipher = plan.cipher
        decrypting = cipher is not None and row.src.endswith(cipher.suffix)
        if cipher is not None and decrypting and final.name.endswith(cipher.suffix):
            final = final.with_name(final.name[: -len(cipher.suffix)])
        try:
            existing = os.lstat(final)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise TransferError(f"{final} is a folder; not replacing it with a file")
            if plan.on_conflict == "rename":
                n = 1
                while os.path.lexists(final.with_name(renamed(final.name, n))):
                    n += 1
                final = final.with_name(renamed(final.name, n))
            elif should_skip(plan.on_conflict, size, mtime, existing.st_size,
                             existing.st_mtime):
                _drop_handle(open_task)
                return Outcome("skipped", str(final), note="destination exists")
        row.dst = str(final)
        temp = str(final) + site.temp_suffix

        # (a decrypting download holds plaintext: _download_into checks what it can keep)
        fd, start = _open_local_temp(temp, row, need=0 if decrypting else row.offset)
        row.temp = temp
        await save(row)
        try:
            outcome = await _download_into(plan, lane, open_task, row, fd, start, size, final,
                                           progress, decrypting)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        _drop_handle(open_task)  # done: nobody needs to wait for the close
        return outcome
    except BaseException:
        if not stat_task.done():
            stat_task.cancel()
        if open_task.done() and not open_task.cancelled() and open_task.exception() is None:
            # stopped or failed: close now, so reads still in flight end before we return
            with contextlib.suppress(Exception):
                await open_task.result().close()
        else:
            _drop_handle(open_task)
        raise
    finally:
        pool.release(lane)


def _drop_handle(open_task: asyncio.Future[asyncssh.SFTPClientFile]) -> None:
    """Close the handle ``open_task`` gives (now or once it answers), in the background;
    a no-op for a handle already closed."""
    def close(task: asyncio.Future[asyncssh.SFTPClientFile]) -> None:
        if not task.cancelled() and task.exception() is None:
            _background(task.result().close())

    if open_task.done():
        close(open_task)
    else:
        open_task.add_done_callback(close)


_BACKGROUND: set[asyncio.Future[Any]] = set()


def _background(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a best-effort request (closing a read handle) without waiting for its answer."""
    async def quiet() -> None:
        with contextlib.suppress(Exception):
            await coro

    task = asyncio.ensure_future(quiet())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _open_local_temp(temp: str, row: FileRow, need: int) -> tuple[int, int]:
    """Open (resume: at least ``need`` bytes there) or create the private temp file;
    returns (fd, start offset)."""
    if row.offset > 0 and row.temp == temp:
        try:
            fd = os.open(temp, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            fd = -1
        if fd >= 0:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size >= need:
                return fd, row.offset
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)  # our own leftover (a symlink here is removed, never followed)
    try:
        fd = open_exclusive(Path(temp), 0o600)
    except OSError as exc:
        raise TransferError(f"cannot create {temp}: {exc.strerror}") from None
    os.close(fd)
    fd = os.open(temp, os.O_RDWR | os.O_NOFOLLOW)
    row.offset = 0
    return fd, 0


def download_lanes(conn: asyncssh.SSHClientConnection | None) -> int:
    """Lanes a big download splits over on ``conn``'s link (see :data:`SHORT_LINK_RTT`)."""
    rtt = round_trip(conn) if conn is not None else None
    return 1 if rtt is not None and rtt < SHORT_LINK_RTT else DOWNLOAD_LANES


async def _download_into(plan: Plan, lane: Lane,
                         open_task: asyncio.Future[asyncssh.SFTPClientFile], row: FileRow,
                         fd: int, start: int, size: int, final: Path, progress: Progress,
                         decrypting: bool) -> Outcome:
    decryptor: Decryptor | None = None
    plain_hash: Any = None
    keep = 0  # decrypting: plaintext bytes already in the temp file
    if decrypting:
        decryptor, start, keep, digest, plain_hash = await _decrypt_from(
            plan, open_task, row, fd, start)
    else:
        digest = (
            await asyncio.to_thread(_hash_prefix_local, row.temp or "", start)
            if start else hashlib.sha256()
        )
    progress.restart(start)
    remote_digest: asyncio.Task[str | None] | None = None
    if plan.verify == "sha256" and not decrypting and not plan.hasher.usable():
        _discard_local_temp(row)  # known not to work here: fail before moving any byte
        raise TransferError(f"{display_name(row.src)}: {NO_SERVER_HASH_DOWN}")
    if plan.verify in ("sha256", "auto") and plan.hasher.usable():
        # the server hashes while we download (the file is not changing under us)
        remote_digest = asyncio.ensure_future(plan.hasher.sha256(row.src))
    sink: OrderedSink | None = None
    try:
        # big files are written and hashed on a helper thread, so the loop only moves packets
        sink = OrderedSink(fd, keep if decrypting else start, plain_hash or digest,
                           threaded=size - start >= THREADED_AT)
        with sftp_errors(row.src):
            fh = await open_task  # closed in the background by download() when done
            block = block_for([lane], writing=False)
            window = _Window(start)
            next_off = start

            def ordered(chunks: list[bytes | None]) -> None:
                assert sink is not None
                if decryptor is None:
                    sink.put(chunks)  # type: ignore[arg-type]  # not decrypting: all bytes
                    progress.checkpoint(sink.written)
                    return
                plain: list[bytes] = []
                for chunk in chunks:
                    assert chunk is not None
                    digest.update(chunk)
                    out = decryptor.update(chunk)
                    if out:
                        plain.append(out)
                sink.put(plain)
                if decryptor.info is not None:  # resume where the written plaintext ends
                    progress.checkpoint(resume_point_for_plaintext(
                        sink.written, decryptor.info.header_len).ciphertext_offset)

            depth = min(READ_REQUESTS, max(1, size // block + 1))  # reads in flight per lane

            async def worker(handle: asyncssh.SFTPClientFile) -> None:
                nonlocal next_off
                assert sink is not None
                while True:
                    await window.wait_until_below(next_off)
                    await sink.room()
                    if next_off >= size:
                        return
                    off = next_off
                    n = min(block, size - off)
                    next_off += n
                    got = 0
                    parts: list[bytes] = []
                    while got < n:
                        data = await read_bytes(handle, n - got, off + got)
                        if not data:
                            raise TransferError(
                                f"{display_name(row.src)} shrank while downloading"
                            )
                        parts.append(data)
                        got += len(data)
                        progress.add(len(data))
                    ordered(window.complete(off, n, parts[0] if len(parts) == 1
                                            else b"".join(parts)))

            async def helpers() -> None:
                """Big files: more lanes join as they open, each with as many reads in flight
                (each SFTP channel has its own window and its own sftp-server process; 64 per
                lane measured 2.14 s vs 2.19 s at 40 ms and 3.18 vs 3.36 s on loopback against
                splitting 64 between the lanes)."""
                if size - start < SPLIT_DOWNLOAD_AT or download_lanes(lane.conn) < 2:
                    return
                try:
                    extra = await plan.pool.more_lanes([lane], DOWNLOAD_LANES - 1)
                except FerryError:
                    return
                handles: list[asyncssh.SFTPClientFile] = []
                try:
                    opened = await asyncio.gather(
                        *(ln.sftp.open(row.src, "rb", block_size=0) for ln in extra),
                        return_exceptions=True)
                    handles = [h for h in opened if isinstance(h, asyncssh.SFTPClientFile)]
                    if not handles or next_off >= size:
                        return
                    await run_all([worker(h) for h in handles for _ in range(depth)])
                finally:
                    await asyncio.gather(*(h.close() for h in handles),
                                         return_exceptions=True)
                    for ln in extra:
                        plan.pool.release(ln)

            await run_all([helpers(), *(worker(fh) for _ in range(depth))])
        if decryptor is not None:
            sink.put([decryptor.finalize()])
        await sink.drain()  # every write and hash update done
        if decryptor is not None:
            os.ftruncate(fd, sink.written)
        else:
            progress.checkpoint(sink.written)
        sha = digest.hexdigest()
        method = await _verify_download(plan, lane, row, fd, size, sha, remote_digest,
                                        decrypting)
        remote_digest = None
        os.fchmod(fd, safe_local_mode(row.mode, 0o644) & ~UMASK)
        if FSYNC:
            await asyncio.to_thread(sink.sync)
        if row.mtime is not None:
            os.utime(fd, (row.mtime, row.mtime))
        _publish_local(row.temp or "", final, replace=plan.on_conflict != "rename")
        return Outcome("done", str(final), sha256=sha, verify=method)
    finally:
        if sink is not None:  # no write may still be pending once the caller closes fd
            sink.close()
        if remote_digest is not None and not remote_digest.done():
            remote_digest.cancel()


async def _decrypt_from(plan: Plan, open_task: asyncio.Future[asyncssh.SFTPClientFile],
                        row: FileRow, fd: int, start: int) -> tuple[Decryptor, int, int, Any, Any]:
    """For a decrypting download checkpointed at container offset ``start``: the decryptor,
    the container offset to read from, the plaintext bytes kept in ``fd``, and the running
    SHA-256 of the container and of the plaintext so far. Continues at the last segment
    boundary whose plaintext is in the temp file; starts over when that cannot be done."""
    cipher = plan.cipher
    assert cipher is not None
    if start > 0:
        try:
            with sftp_errors(row.src):
                head = await read_bytes(await open_task, 64 * 1024, 0)
            dec, offset, keep, digest = await asyncio.to_thread(
                cipher.resume_download, head, start, fd)
            if offset > 0:
                os.ftruncate(fd, keep)
                plain = await asyncio.to_thread(_hash_prefix_local, row.temp or "", keep)
                return dec, offset, keep, digest, plain
        except (IntegrityError, UsageError, TransferError):
            pass  # the partial copy cannot be trusted or continued: start over
    os.ftruncate(fd, 0)
    return cipher.decryptor(), 0, 0, hashlib.sha256(), hashlib.sha256()


async def _verify_download(plan: Plan, lane: Lane, row: FileRow, fd: int, size: int, sha: str,
                           remote_digest: asyncio.Task[str | None] | None,
                           decrypting: bool) -> str:
    """Check what was received; returns the method (model.VERIFIED_BY). Read-back means
    nothing here (the bytes were just read): ``sha256`` needs the server's hash (a
    decrypting download's authenticated segments stand in for it), ``auto`` falls back to
    size + tail."""
    if plan.verify == "none":
        return "none"
    if remote_digest is not None:
        theirs = await remote_digest
        if theirs is not None:
            if theirs != sha:
                raise IntegrityError(
                    f"{display_name(row.src)}: SHA-256 differs from the server's "
                    f"({sha[:12]}… vs {theirs[:12]}…)"
                )
            return "sha256-server"
    if decrypting:
        # the container's authenticated segments already proved every byte
        return "aes-gcm"
    if plan.verify == "sha256":
        _discard_local_temp(row)
        raise TransferError(f"{display_name(row.src)}: {NO_SERVER_HASH_DOWN}")
    with sftp_errors(row.src):
        ok = await tail_matches(lane.sftp, row.src, fd, size)
    if not ok:
        raise IntegrityError(f"{display_name(row.src)}: size or tail differs from the server's")
    return "size+tail"


def _discard_local_temp(row: FileRow) -> None:
    """A download that cannot be verified as asked: its temp file is not kept."""
    if row.temp:
        with contextlib.suppress(OSError):
            os.unlink(row.temp)
    row.temp, row.offset = None, 0


def _read_umask() -> int:
    """The process umask without changing it (Linux: ``Umask:`` in /proc/self/status);
    elsewhere set and put back once, here at import, before any helper thread exists."""
    with contextlib.suppress(OSError, ValueError, IndexError), \
            open("/proc/self/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


UMASK = _read_umask()
"""Read once at start-up: setting the umask to read it would, for that instant, give every
file a helper thread creates meanwhile mode 0666 (downloaded files get ``mode & ~UMASK``)."""


def _publish_local(temp: str, final: Path, *, replace: bool) -> None:
    if replace:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final, follow_symlinks=False)
    except FileExistsError:
        raise TransferError(f"{final} appeared meanwhile; not replacing it") from None
    os.unlink(temp)


# -- uploads ---------------------------------------------------------------------------------


async def _remote_lstat(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs | None:
    try:
        return await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return None


async def upload(plan: Plan, row: FileRow, progress: Progress,
                 save: Callable[[FileRow], Awaitable[None]]) -> Outcome:
    """Send local ``row.src`` to remote ``row.dst`` through a temp name (unless direct)."""
    pool, site = plan.pool, plan.site
    try:
        fd = os.open(row.src, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise TransferError(f"{row.src} no longer exists") from None
    except OSError as exc:
        raise TransferError(f"cannot read {row.src}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TransferError(f"{row.src} is not a regular file")
        if (st.st_size, st.st_mtime) != (row.size, row.mtime):
            row.offset = 0
        row.size, row.mtime = st.st_size, st.st_mtime
        lane = await pool.lane()
        early: asyncio.Future[asyncssh.SFTPClientFile] | None = None
        try:
            final = row.dst
            if plan.cipher is not None and not final.endswith(plan.cipher.suffix):
                final += plan.cipher.suffix
            guess = final + site.temp_suffix
            if (row.size < SPLIT_UPLOAD_AT and plan.cipher is None
                    and plan.on_conflict != "rename" and site.upload_mode != "direct"
                    and not (row.offset and row.temp == guess)):
                # a fresh small upload: create the temp file while the destination is looked
                # at (one round trip, not two); removed again if the policy says skip
                early = asyncio.ensure_future(lane.sftp.open(
                    guess, asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC,
                    block_size=0, encoding=None))
            with sftp_errors(final):
                existing = await _remote_lstat(lane.sftp, final)
                if existing is not None:
                    if existing.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                        raise TransferError(f"{display_name(final)} is a folder on the server")
                    if plan.on_conflict == "rename":
                        parent, name = posixpath.split(final)
                        n = 1
                        while await _remote_lstat(
                            lane.sftp, posixpath.join(parent, renamed(name, n))
                        ):
                            n += 1
                        final = posixpath.join(parent, renamed(name, n))
                    elif should_skip(
                        plan.on_conflict,
                        row.size if plan.cipher is None else plan.cipher.size_of(row.size),
                        row.mtime, int(existing.size or 0),
                        float(existing.mtime) if existing.mtime is not None else None,
                    ) and not await _same_size_differs(plan, lane, fd, row, final):
                        await _abandon(lane, early, guess)
                        pool.release(lane)
                        return Outcome("skipped", final, note="destination exists")
        except BaseException:
            await _abandon(lane, early, guess)
            pool.release(lane)
            raise
        row.dst = final
        direct = site.upload_mode == "direct"
        temp = final if direct else final + site.temp_suffix
        return await _upload_via(plan, row, fd, temp, final, direct, progress, save, lane,
                                 early)
    finally:
        os.close(fd)


async def _same_size_differs(plan: Plan, lane: Lane, fd: int, row: FileRow,
                             final: str) -> bool:
    """``resume`` found ``final`` with the source's size: is its content different
    after all (a re-sent study of the same size)? Compared by the server's SHA-256 when it can
    hash, else by size + the last :data:`~backend.transfers.verify.TAIL` bytes read back (a
    difference only before the tail goes unseen: docs/transfers.md, "When the destination
    exists"). An encrypted upload's container cannot be compared: same size is kept."""
    if plan.on_conflict != "resume" or plan.cipher is not None:
        return False  # `size` is the cheap policy: the user asked for sizes only
    name = display_name(final)
    theirs = await plan.hasher.sha256(final) if plan.hasher.usable() else None
    if theirs is not None:
        ours: str = (await asyncio.to_thread(_sha256_fd, fd, row.size)).hexdigest()
        if theirs != ours:
            log.info("%s: same size but a different SHA-256 on the server: replacing it", name)
        return theirs != ours
    if await tail_matches(lane.sftp, final, fd, row.size):
        log.debug("%s: same size and tail (the server cannot hash): kept", name)
        return False
    log.info("%s: same size but a different tail on the server: replacing it", name)
    return True


def _sha256_fd(fd: int, size: int) -> Any:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 20), offset)
        if not chunk:
            raise TransferError("the local file shrank while it was compared")
        digest.update(chunk)
        offset += len(chunk)
    return digest


async def _abandon(lane: Lane, early: asyncio.Future[asyncssh.SFTPClientFile] | None,
                   path: str) -> None:
    """Undo an early-created upload temp file (the policy said skip, or something failed)."""
    if early is None:
        return
    try:
        fh = await early
    except Exception:
        return
    with contextlib.suppress(Exception):
        await fh.close()
    with contextlib.suppress(Exception):
        await lane.sftp.remove(path)


async def _upload_via(plan: Plan, row: FileRow, fd: int, temp: str, final: str, direct: bool,
                      progress: Progress, save: Callable[[FileRow], Awaitable[None]], lane: Lane,
                      early: asyncio.Future[asyncssh.SFTPClientFile] | None) -> Outcome:
    """Move the bytes on ``lane`` (released here), more lanes joining for a big file;
    ``early``: the temp file's handle, already being opened by :func:`upload`.

    A resumed upload reopens the temp file without truncating it and checks the part already
    there against the local prefix (:func:`_reopen_checked`) before appending; a server that
    refuses the reopen, or a prefix that differs or cannot be checked, restarts the file from
    zero once, and the outcome's note says so."""
    pool = plan.pool
    nlanes = upload_lanes(plan.site, row.size, split_at=SPLIT_UPLOAD_AT, lanes=UPLOAD_LANES)
    extra: list[Lane] = []  # lanes that joined once data was moving
    stream: StreamingHash | None = None  # the server hashing the temp file as it grows
    note: str | None = None
    try:
        start = row.offset if row.temp == temp and early is None else 0
        if start and pool.append_ok is False:
            start, note = 0, RESTART_NO_APPEND  # learnt earlier this session
        if start:
            with sftp_errors(temp):
                attrs = await _remote_lstat(lane.sftp, temp)
            if attrs is None or int(attrs.size or 0) < start:
                start = 0
        source, start, total, digest = await _begin_at(plan, fd, row, start, lane, temp)
        row.temp, row.offset = temp, start
        await save(row)
        progress.restart(start)
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | (0 if start else asyncssh.FXF_TRUNC)
        handles: list[asyncssh.SFTPClientFile] = []

        async def more_lanes() -> list[asyncssh.SFTPClientFile]:
            """Big files: the other lanes, once open (data already moves on the first).
            Their handles never truncate, and open only after the first one answered."""
            try:
                got = await pool.more_lanes([lane], nlanes - 1)
            except FerryError:
                return []
            extra.extend(got)
            opens = [asyncio.ensure_future(ln.sftp.open(
                temp, flags & ~asyncssh.FXF_TRUNC, block_size=0, encoding=None)) for ln in got]
            try:
                await asyncio.wait(opens)
            except asyncio.CancelledError:  # not needed after all: close them once open
                for task in opens:
                    _drop_handle(task)
                raise
            joined = [t.result() for t in opens if t.exception() is None]
            handles.extend(joined)
            return joined

        with sftp_errors(temp):
            try:
                first: asyncssh.SFTPClientFile | None = None
                if start:
                    first, why = await _reopen_checked(plan, lane, row, temp, start, digest)
                    if first is None:
                        note = why
                        log.warning("%s: %s", display_name(final), why)
                        source, start, total, digest = await _begin_at(plan, fd, row, 0, lane,
                                                                       temp)
                        row.offset = 0
                        await save(row)
                        progress.restart(0)
                        flags |= asyncssh.FXF_TRUNC
                if first is None:
                    first = await (early if early is not None else lane.sftp.open(
                        temp, flags, block_size=0, encoding=None))
                handles.append(first)
                # [0, start) on the server is known to equal the local prefix (checked above)
                checked = (start, digest.copy())
                if plan.verify in ("sha256", "auto") and plan.hasher.usable():
                    stream = start_streaming(lane.conn, temp, start, total)
                await _push(handles[0], lane, fd, source, start, total, digest, progress,
                            more_lanes if nlanes > 1 else None, stream)
            finally:
                await asyncio.gather(*(h.close() for h in handles), return_exceptions=True)
        sha = digest.hexdigest()
        method = await _verify_upload(plan, lane, row, fd, temp, total, sha, source, stream,
                                      checked)
        await _keep_mtime(lane.sftp, temp, row.mtime)
        if not direct:
            published = await _publish_remote(lane.sftp, temp, final,
                                              replace=plan.on_conflict != "rename")
            note = "; ".join(n for n in (note, published) if n) or None
        return Outcome("done", final, sha256=sha, verify=method, note=note)
    finally:
        if stream is not None:
            stream.close()
        for used in [lane, *extra]:
            pool.release(used)


RESTART_NO_APPEND = "restarted from zero: the server cannot continue a partial upload"
RESTART_DIFFERS = ("restarted from zero: the part already on the server differed from "
                   "the local file")
RESTART_UNCHECKED = ("restarted from zero: the part already on the server could not be "
                     "checked")
# what a server that cannot reopen a file for writing at an offset answers (an S3-backed
# gateway: "append/resume of an existing object is not supported")
REOPEN_REFUSED = (asyncssh.SFTPOpUnsupported, asyncssh.SFTPFailure,
                  asyncssh.SFTPPermissionDenied)


async def _begin_at(plan: Plan, fd: int, row: FileRow, start: int, lane: Lane,
                    temp: str) -> tuple[Any, int, int, Any]:
    """(encrypting source or None, start offset, total bytes, running SHA-256 of the
    local bytes ``[0, start)``) for an upload continuing at ``start`` (0: from scratch)."""
    if plan.cipher is not None:
        source = await plan.cipher.upload_source(fd, row, start, lane.sftp, temp)
        return source, source.start, source.total, await source.prefix_digest()
    digest = (await asyncio.to_thread(_hash_prefix_local, row.src, start) if start
              else hashlib.sha256())
    return None, start, row.size, digest


async def _reopen_checked(plan: Plan, lane: Lane, row: FileRow, temp: str, start: int,
                          digest: Any) -> tuple[asyncssh.SFTPClientFile | None, str | None]:
    """Reopen ``temp`` to continue at ``start`` once ``[0, start)`` on the server is known
    to equal the local prefix (``digest``): (handle, None), or (None, why it must restart
    from zero). ``--verify none`` skips the check."""
    try:
        fh = await lane.sftp.open(temp, asyncssh.FXF_WRITE | asyncssh.FXF_CREAT,
                                  block_size=0, encoding=None)
    except REOPEN_REFUSED as exc:
        log.info("%s: reopening %s refused (%s)", plan.pool.name, display_name(temp),
                 display_name(str(exc)))
        plan.pool.append_ok = False
        return None, RESTART_NO_APPEND
    plan.pool.append_ok = True
    if plan.verify == "none":
        return fh, None
    try:
        same = await _prefix_matches(plan, lane, temp, start, digest.copy().hexdigest())
    except BaseException:
        _background(fh.close())
        raise
    if same:
        return fh, None
    await fh.close()
    return None, RESTART_DIFFERS if same is False else RESTART_UNCHECKED


async def _prefix_matches(plan: Plan, lane: Lane, temp: str, length: int,
                          want: str) -> bool | None:
    """Does ``[0, length)`` of ``temp`` on the server hash to ``want``? The server's hash
    where it can (``head -c``), else read back; None when neither is possible."""
    theirs = await plan.hasher.prefix_sha256(temp, length)
    if theirs is not None:
        return theirs == want
    if plan.pool.readback_ok is False:
        return None
    try:
        got = await remote_sha256(lane.sftp, temp, block_for([lane], writing=False),
                                  end=length)
    except REFUSED:
        plan.pool.readback_ok = False
        return None
    except TransferError:
        return False  # shorter than that
    except (asyncssh.Error, OSError) as exc:
        raise translate_sftp_error(exc, temp) from None
    plan.pool.readback_ok = True
    return bool(got.hexdigest() == want)


async def _push(first: asyncssh.SFTPClientFile, lane: Lane, fd: int, source: Any, start: int,
                total: int, digest: Any, progress: Progress,
                more: Callable[[], Awaitable[list[asyncssh.SFTPClientFile]]] | None,
                stream: StreamingHash | None = None) -> None:
    """Write ``[start, total)`` with :data:`WRITE_REQUESTS_PER_LANE` requests in flight on
    ``first``; handles ``more()`` returns join with as many each (unless the data is all
    handed out before they open). ``stream`` hears how far the file is written in order."""
    block = block_for([lane], writing=True)
    window = _Window(start)
    next_off = start
    handed_out = asyncio.Event()

    def take(off: int, n: int) -> bytes:
        if source is not None:
            taken: bytes = source.take(n)
            return taken
        data = os.pread(fd, n, off)
        if len(data) != n:
            raise TransferError("the local file shrank while uploading")
        return data

    async def worker(fh: asyncssh.SFTPClientFile) -> None:
        nonlocal next_off
        while True:
            await window.wait_until_below(next_off)
            if next_off >= total:
                handed_out.set()
                return
            off = next_off
            n = min(block, total - off)
            next_off += n
            data = take(off, n)  # sequential: no await between choosing and reading
            digest.update(data)
            await fh.write(data, off)
            progress.add(n)
            window.complete(off, n, None)
            progress.checkpoint(window.contig)
            if stream is not None:
                stream.advance(window.contig)

    async def joiner() -> None:
        if more is None:
            return
        joining = asyncio.ensure_future(more())
        done = asyncio.ensure_future(handed_out.wait())
        try:
            await asyncio.wait({joining, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            if not joining.done():  # every block is out: the other lanes are not needed
                await cancel_and_wait(joining)
        if joining.cancelled():
            return
        joined = joining.result()
        await run_all([worker(fh) for fh in joined for _ in range(WRITE_REQUESTS_PER_LANE)])

    await run_all([joiner(), *(worker(first) for _ in range(WRITE_REQUESTS_PER_LANE))])


NO_SERVER_HASH_UP = ("cannot verify by SHA-256: the server cannot hash (no exec) and refuses "
                     "to let the upload be read back; use --verify auto or size")
NO_SERVER_HASH_DOWN = ("cannot verify by SHA-256: the server cannot hash (no exec); use "
                       "--verify auto or size")


async def _verify_upload(plan: Plan, lane: Lane, row: FileRow, fd: int, temp: str, total: int,
                         sha: str, source: Any, stream: StreamingHash | None = None,
                         checked: tuple[int, Any] = (0, None)) -> str:
    """Check the temp file on the server; returns the method (model.VERIFIED_BY). ``sha256``
    and ``auto``: the server's hash, else read-back; ``sha256`` fails the file when neither
    can be had, ``auto`` (and ``size``) fall back to size + tail, or size only where the
    server refuses reads. ``checked``: (n, digest) with ``[0, n)`` on the server known to
    equal the local prefix hashing to ``digest`` (a read-back then reads only the rest)."""
    if plan.verify == "none":
        return "none"
    if plan.verify in ("sha256", "auto"):
        if stream is not None:
            streamed = await stream.result(total)
            if streamed == sha:
                log.debug("%s: SHA-256 hashed by the server while uploading",
                          display_name(row.dst))
                return "sha256-server"
            # no stream, or it disagrees: the whole file, hashed again, decides
        theirs = await plan.hasher.sha256(temp)
        if theirs is not None:
            if theirs != sha:
                raise IntegrityError(
                    f"{display_name(row.dst)}: SHA-256 on the server differs from what was sent"
                )
            return "sha256-server"
        if await _read_back(plan, lane, row, temp, total, sha, checked):
            return "sha256-readback"
        if plan.verify == "sha256":
            with contextlib.suppress(asyncssh.Error, OSError):
                await lane.sftp.remove(temp)  # unverifiable: do not leave it to be published
            row.temp, row.offset = None, 0
            raise TransferError(f"{display_name(row.dst)}: {NO_SERVER_HASH_UP}")
    with sftp_errors(temp):
        try:
            if source is not None:
                attrs = await lane.sftp.stat(temp)
                ok = int(attrs.size or 0) == total and await source.tail_matches(lane.sftp,
                                                                                temp)
            else:
                ok = await tail_matches(lane.sftp, temp, fd, total)
            method = "size+tail"
        except REFUSED:  # a write-only drop box: only the size can be had
            attrs = await lane.sftp.stat(temp)
            ok, method = int(attrs.size or 0) == total, "size"
    if not ok:
        raise IntegrityError(f"{display_name(row.dst)}: size or tail on the server differs")
    return method


async def _read_back(plan: Plan, lane: Lane, row: FileRow, temp: str, total: int, sha: str,
                     checked: tuple[int, Any]) -> bool:
    """Read ``temp`` back and compare its SHA-256 with ``sha`` (IntegrityError if it
    differs); False when the server refuses reads (learnt once per site pool)."""
    if plan.pool.readback_ok is False:
        return False
    upto, prefix = checked
    try:
        got = await remote_sha256(lane.sftp, temp, block_for([lane], writing=False),
                                  start=upto if prefix is not None else 0, end=total,
                                  digest=prefix.copy() if prefix is not None and upto else None)
    except REFUSED as exc:
        log.info("%s: reading %s back refused (%s)", plan.pool.name, display_name(temp),
                 display_name(str(exc)))
        plan.pool.readback_ok = False
        return False
    except TransferError:
        raise IntegrityError(
            f"{display_name(row.dst)}: the file on the server is shorter than what was sent"
        ) from None
    except (asyncssh.Error, OSError) as exc:
        raise translate_sftp_error(exc, temp) from None
    plan.pool.readback_ok = True
    if got.hexdigest() != sha:
        raise IntegrityError(
            f"{display_name(row.dst)}: SHA-256 read back from the server differs from what "
            "was sent"
        )
    return True


async def _keep_mtime(sftp: asyncssh.SFTPClient, path: str, mtime: float | None) -> None:
    """Give the uploaded file the source's mtime (before it is published: a rename keeps it),
    so ``--on-conflict newer`` compares real times. A server that refuses (S3-backed gateways
    have no setstat) costs the upload nothing: it is noted in the debug log only."""
    if mtime is None:
        return
    try:
        await sftp.utime(path, (mtime, mtime))
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise  # the engine reconnects (engine._classify)
        log.debug("%s: the server did not keep the mtime: %s", display_name(path), _reason(exc))


ASIDE_INFIX = ".ferry-old-"


def _lost(exc: asyncssh.SFTPError) -> bool:
    """An SFTP error that means the connection is gone (not a refusal by the server)."""
    return isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection)


def _reason(exc: asyncssh.SFTPError) -> str:
    return display_name(str(exc.reason or type(exc).__name__))


async def _publish_remote(sftp: asyncssh.SFTPClient, temp: str, final: str, *,
                          replace: bool) -> str | None:
    """Rename the finished upload ``temp`` onto ``final`` without ever deleting the only copy;
    returns a note for the user (an old copy that could not be removed), or None.

    ``posix-rename@openssh.com`` replaces atomically. Where it is missing or refused and
    ``final`` exists: rename the old file aside (``<name>.ferry-old-<random>``), rename the
    upload into place, remove the aside copy. When a step fails the old file is put back and
    the error names what exists now (docs/transfers.md, "Publishing an upload"). A refusal
    fails the file without retries (the server will refuse again); a lost connection
    propagates so the engine reconnects."""
    shown = display_name(final)
    with sftp_errors(final):
        if replace:
            try:
                await sftp.posix_rename(temp, final)
                return None
            except asyncssh.SFTPError as exc:
                if _lost(exc):
                    raise
                log.debug("%s: posix-rename failed (%s); replacing by renames", shown,
                          _reason(exc))
            if await _remote_lstat(sftp, final) is not None:
                return await _replace_by_renames(sftp, temp, final)
        failure = None
        try:
            await sftp.rename(temp, final)
            return None
        except asyncssh.SFTPError as exc:
            if _lost(exc):
                raise
            failure = _reason(exc)
        there = await _remote_lstat(sftp, final) is not None  # e.g. it appeared meanwhile
        upload = await _where_upload_is(sftp, temp)
    # raised outside the except block: a refusal is final for this file (no retry loop)
    raise TransferError(f"{shown} {'kept as it was' if there else 'was not created'}; "
                        f"{upload} (the server refused rename: {failure})")


async def _where_upload_is(sftp: asyncssh.SFTPClient, temp: str) -> str:
    """For a failure message: where the finished upload is now (checked, not assumed)."""
    name = display_name(posixpath.basename(temp))
    try:
        found = await _remote_lstat(sftp, temp) is not None
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        return f"the upload should be in {name} beside it"
    return f"the upload is in {name} beside it" if found else f"the upload is gone ({name})"


async def _replace_by_renames(sftp: asyncssh.SFTPClient, temp: str, final: str) -> str | None:
    """:func:`_publish_remote` where ``final`` exists and cannot be replaced in one step."""
    parent, name = posixpath.split(final)
    aside = posixpath.join(parent, name + ASIDE_INFIX + secrets.token_hex(4))
    shown, aside_name = display_name(final), display_name(posixpath.basename(aside))
    message = None
    try:
        await sftp.rename(final, aside)
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        message = (f"{shown} kept as it was; {await _where_upload_is(sftp, temp)} "
                   f"(the server refused rename: {_reason(exc)})")
    if message is not None:
        raise TransferError(message)
    try:
        await sftp.rename(temp, final)
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            log.warning("%s: connection lost while publishing; the old file may be in %s",
                        shown, aside_name)
            raise
        first = _reason(exc)
        try:
            await sftp.rename(aside, final)
            message = (f"{shown} kept as it was; {await _where_upload_is(sftp, temp)} "
                       f"(the server refused to rename it into place: {first})")
        except asyncssh.SFTPError as back:
            if _lost(back):
                log.warning("%s: connection lost while putting the old file back from %s",
                            shown, aside_name)
                raise
            message = (f"{shown} is missing: the old file is in {aside_name} and "
                       f"{await _where_upload_is(sftp, temp)} (the server refused to rename "
                       f"the upload into place: {first}, then to put the old file back: "
                       f"{_reason(back)})")
            log.error("%s", message)
    if message is not None:
        raise TransferError(message)
    try:
        await sftp.remove(aside)
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            log.warning("%s replaced; the old copy is still in %s (connection lost)",
                        shown, aside_name)
            raise
        note = (f"replaced {shown}; the old copy could not be removed and is in "
                f"{aside_name} ({_reason(exc)})")
        log.warning("%s", note)
        return note
    return None


Saver = Callable[[FileRow], None]
Runner = Callable[[Plan, FileRow, Progress, Saver], Awaitable[Outcome]]
