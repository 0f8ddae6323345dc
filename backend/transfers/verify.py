"""Checking a transferred file: the server's ``sha256sum`` over exec, or size + tail re-read.

:class:`RemoteHasher` batches requests (many small files finishing together share one exec
channel: ``sha256sum -- 'a' 'b' ...``, every path ``shlex.quote``d). When the site forbids exec
or the account is sftp-only (exec refused, or answers without digests), it answers None and
the caller falls back to :func:`tail_matches`: the remote size must equal the local size and
the last :data:`TAIL` bytes read back from the server must equal the local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex

import asyncssh

from backend.errors import ConnectError
from backend.transfers.pool import SitePool

log = logging.getLogger("ferry.transfers")

TAIL = 64 * 1024
BATCH = 48
BATCH_DELAY = 0.04
EXEC_TIMEOUT = 600.0
EXEC_AT_ONCE = 4
_LINE = re.compile(r"^\\?([0-9a-f]{64}) [ *]")


class RemoteHasher:
    """``await hasher.sha256(path)`` -> hex digest, or None when exec cannot be used."""

    def __init__(self, pool: SitePool) -> None:
        self._pool = pool
        self._pending: list[tuple[str, asyncio.Future[str | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # exec channels count against sshd's MaxSessions (10) together with the SFTP lanes
        self._slots = asyncio.Semaphore(EXEC_AT_ONCE)

    async def sha256(self, path: str) -> str | None:
        if self._pool.exec_ok is False or (
            self._pool.site is not None and not self._pool.site.allow_exec
        ):
            return None
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((path, fut))
        if len(self._pending) >= BATCH:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
        return await fut

    async def _flush_later(self) -> None:
        await asyncio.sleep(BATCH_DELAY)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _run(self, batch: list[tuple[str, asyncio.Future[str | None]]]) -> None:
        try:
            digests = await self._exec([p for p, _ in batch])
            if digests is None and len(batch) > 1 and self._pool.exec_ok:
                digests = [
                    (d[0] if d else None)
                    for d in await asyncio.gather(*(self._exec([p]) for p, _ in batch))
                ]
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            raise
        for i, (_, fut) in enumerate(batch):
            if not fut.done():
                fut.set_result(digests[i] if digests else None)

    async def _exec(self, paths: list[str]) -> list[str | None] | None:
        async with self._slots:
            return await self._exec_now(paths)

    async def _exec_now(self, paths: list[str]) -> list[str | None] | None:
        conn = self._pool.connection()
        if conn is None:
            return None
        command = "sha256sum -- " + " ".join(shlex.quote(p) for p in paths)
        try:
            result = await conn.run(command, check=False, timeout=EXEC_TIMEOUT, input="")
        except asyncssh.ChannelOpenError:
            if conn.is_closed():
                raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
            self._pool.exec_ok = False  # the server refuses exec (sftp-only account)
            return None
        except (asyncssh.ProcessError, TimeoutError, asyncssh.TimeoutError):
            return None
        except (asyncssh.Error, OSError):
            raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
        out = result.stdout if isinstance(result.stdout, str) else ""
        lines = [ln for ln in out.splitlines() if ln]
        digests = [m.group(1) if (m := _LINE.match(ln)) else None for ln in lines]
        if result.exit_status == 0 and len(digests) == len(paths) and all(digests):
            self._pool.exec_ok = True
            return digests
        no_tool = result.exit_status in (126, 127) or (not lines and len(paths) == 1)
        if no_tool and self._pool.exec_ok is None:
            # no sha256sum there, or an sftp-only account answering with nothing
            self._pool.exec_ok = False
        return None


async def remote_tail(sftp: asyncssh.SFTPClient, path: str, size: int) -> bytes:
    """The last ``TAIL`` bytes (or fewer) of a remote file of ``size`` bytes."""
    start = max(0, size - TAIL)
    async with sftp.open(path, "rb", block_size=TAIL, max_requests=4) as fh:
        out = bytearray()
        while len(out) < size - start:
            chunk = await fh.read(size - start - len(out), start + len(out))
            if not chunk:
                break
            out += chunk
    return bytes(out)


def local_tail(fd: int, size: int) -> bytes:
    start = max(0, size - TAIL)
    return os.pread(fd, size - start, start)


async def tail_matches(
    sftp: asyncssh.SFTPClient, remote_path: str, local_fd: int, size: int
) -> bool:
    """Size check plus a re-read of the tail from the server, compared with the local file."""
    attrs = await sftp.stat(remote_path)
    if attrs.size != size or os.fstat(local_fd).st_size != size:
        return False
    if size == 0:
        return True
    remote = await remote_tail(sftp, remote_path, size)
    with contextlib.suppress(OSError):
        return remote == local_tail(local_fd, size)
    return False
