"""Read-back verification: the SHA-256 of a file as the server holds it, re-read over SFTP.

Where the server cannot hash (no exec: ProFTPD mod_sftp, OpenSSH accounts with ``ForceCommand
internal-sftp``, S3-backed gateways), an upload's temp file is read back once its last byte
is acknowledged and its handles are closed, and hashed before it is published: the digest
is of the bytes the server returns, so it proves the server's copy, not the local file
(method ``sha256-readback``, see docs/transfers.md). Like the download path in
:mod:`backend.transfers.copier`, :func:`remote_sha256` keeps :data:`READ_REQUESTS` reads of
the server's block size in flight on one SFTP channel (more when the server's block is small,
so about :data:`IN_FLIGHT` bytes are on the way), and hashes the answers in order, on a helper
thread for big files. A server that does not say its limits (no ``limits@openssh.com``:
ProFTPD, plain SFTPv3) is taken by asyncssh to allow 16 KiB reads; the first read then asks
for :data:`PROBE_BLOCK` and the rest use what it answered (ProFTPD serves 256 KiB reads:
256 MiB read back in 0.6 s instead of 2.4 s on loopback), or 16 KiB if it refused.

A resumed upload reads back the prefix already on the server the same way and compares it
with the local prefix before appending (a server that can hash does that over exec instead);
the final check then continues that digest and reads only the rest.

The SFTP ``check-file`` extension would let a server hash without exec (ProFTPD mod_sftp
offers it; OpenSSH does not), but asyncssh has no public API to send it, so Ferry reads back.
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncssh

from backend.errors import TransferError
from backend.names import display_name
from backend.remote import read_bytes

READ_REQUESTS = 64  # reads in flight at least
IN_FLIGHT = 16 * 1024 * 1024  # ... or enough of them to have this many bytes on the way
MAX_REQUESTS = 512
AHEAD = 64 * 1024 * 1024  # answered bytes waiting for an earlier one before readers wait
THREADED_AT = 8 * 1024 * 1024  # ranges this big are hashed on a helper thread
PROBE_BLOCK = 256 * 1024  # the first read's size where the server's block is smaller

# the server says no to reading the file back (a write-only drop box): not a lost connection
REFUSED = (asyncssh.SFTPPermissionDenied, asyncssh.SFTPOpUnsupported)


def requests_for(block: int) -> int:
    """Reads in flight for a server whose largest read is ``block`` bytes."""
    return max(READ_REQUESTS, min(MAX_REQUESTS, IN_FLIGHT // max(block, 1)))


class _InOrder:
    """Answers arrive out of order; hash them in order (inline, or on one helper thread)."""

    def __init__(self, digest: Any, start: int, threaded: bool) -> None:
        self.digest = digest
        self.contig = start
        self._done: dict[int, bytes] = {}
        self._io = ThreadPoolExecutor(1, thread_name_prefix="ferry-readback") if threaded \
            else None
        self._last: asyncio.Future[None] | None = None
        self._moved = asyncio.Event()

    def put(self, offset: int, data: bytes) -> None:
        self._done[offset] = data
        ready: list[bytes] = []
        while self.contig in self._done:
            chunk = self._done.pop(self.contig)
            self.contig += len(chunk)
            ready.append(chunk)
        if not ready:
            return
        if self._io is None:
            for chunk in ready:
                self.digest.update(chunk)
        else:
            self._last = asyncio.get_running_loop().run_in_executor(
                self._io, _update_all, self.digest, ready)
        self._moved.set()
        self._moved = asyncio.Event()

    async def wait_until_below(self, offset: int) -> None:
        while offset - self.contig > AHEAD:
            await self._moved.wait()

    async def drain(self) -> Any:
        if self._last is not None:
            await self._last
        return self.digest

    def close(self) -> None:
        if self._io is not None:
            self._io.shutdown(wait=True, cancel_futures=True)


async def _probe(fh: asyncssh.SFTPClientFile, offset: int, size: int) -> bytes:
    """One read of ``size`` bytes: what the server answers (maybe fewer), or b"" when it
    refuses a read that big."""
    try:
        return await read_bytes(fh, size, offset)
    except (asyncssh.SFTPConnectionLost, *REFUSED):
        raise
    except asyncssh.SFTPError:
        return b""


def _update_all(digest: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)


async def remote_sha256(sftp: asyncssh.SFTPClient, path: str, block: int, *, start: int = 0,
                        end: int, digest: Any = None) -> Any:
    """The running SHA-256 ``digest`` (new if None, else already holding ``[0, start)``)
    continued with bytes ``[start, end)`` of ``path`` as the server returns them. Raises the
    SFTP error when the server refuses the read (:data:`REFUSED`) or fails, and
    :class:`TransferError` when the file is shorter than ``end``."""
    digest = digest if digest is not None else hashlib.sha256()
    if end <= start:
        return digest
    order = _InOrder(digest, start, threaded=end - start >= THREADED_AT)
    next_off = start
    try:
        async with sftp.open(path, "rb", block_size=0) as fh:
            if block < PROBE_BLOCK < end - start:
                first = await _probe(fh, start, PROBE_BLOCK)
                if first:
                    block = max(block, len(first))
                    order.put(start, first)
                    next_off = start + len(first)

            async def reader() -> None:
                nonlocal next_off
                while True:
                    await order.wait_until_below(next_off)
                    if next_off >= end:
                        return
                    off = next_off
                    n = min(block, end - off)
                    next_off += n
                    parts: list[bytes] = []
                    got = 0
                    while got < n:
                        data = await read_bytes(fh, n - got, off + got)
                        if not data:
                            raise TransferError(
                                f"{display_name(path)} on the server is shorter than what "
                                "was sent")
                        parts.append(data)
                        got += len(data)
                    order.put(off, parts[0] if len(parts) == 1 else b"".join(parts))

            depth = min(requests_for(block), max(1, (end - start) // block + 1))
            tasks = [asyncio.ensure_future(reader()) for _ in range(depth)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return await order.drain()
    finally:
        order.close()
