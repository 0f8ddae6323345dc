"""Where a download's bytes go: the local temp file, written in order and hashed as written.

The copier hands :class:`OrderedSink` the stream's contiguous chunks as they become
contiguous (:meth:`OrderedSink.put`, never awaited per block). For big files one helper
thread writes them sequentially and hashes them (both release the GIL), with background
writeback (:class:`backend.crypto.outfile.DurableWriter`) so the final ``fsync`` has little
left to do; the event loop only moves packets. At most :data:`QUEUED` bytes wait for the
thread: past that the copier's readers wait in :meth:`OrderedSink.room`. Small files are
written inline. :attr:`OrderedSink.written` is the offset up to which bytes are in the file
(what a resume may trust), and an I/O error is raised on the loop at the next
:meth:`room` / :meth:`drain`.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend.crypto.outfile import DurableWriter
from backend.errors import TransferError

QUEUED = 32 * 1024 * 1024  # bytes handed to the helper thread and not yet written


class OrderedSink:
    """Sequential writer + hasher on ``fd`` from offset ``start``."""

    def __init__(self, fd: int, start: int, digest: Any, *, threaded: bool) -> None:
        os.lseek(fd, start, os.SEEK_SET)
        self._writer = DurableWriter(fd)
        self._digest = digest
        self.written = start  # updated by the writing thread (a plain int: GIL-atomic)
        self._submitted = start
        self._error: OSError | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="ferry-io") if threaded else None
        self._loop = asyncio.get_running_loop()
        self._waiting = False
        self._room = asyncio.Event()

    def put(self, chunks: list[bytes]) -> None:
        """Queue ``chunks`` (contiguous, in order, following everything put before)."""
        if not chunks:
            return
        self._submitted += sum(len(c) for c in chunks)
        if self._io is None:
            self._write(chunks)
            self._raise()
        else:
            self._io.submit(self._write, chunks)

    def _write(self, chunks: list[bytes]) -> None:
        """On the helper thread (or inline): write and hash, in order."""
        if self._error is not None:
            return
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[self._writer.write(view):]
                self._digest.update(chunk)
                self.written += len(chunk)
        except OSError as exc:
            self._error = exc
        if self._waiting and (self._error is not None
                              or self._submitted - self.written <= QUEUED // 2):
            self._waiting = False
            self._loop.call_soon_threadsafe(self._room.set)

    async def room(self) -> None:
        """Wait while too much is queued for the thread (the disk is slower than the link)."""
        while self._submitted - self.written > QUEUED and self._error is None:
            self._room.clear()
            self._waiting = True
            if self._submitted - self.written > QUEUED and self._error is None:
                await self._room.wait()
        self._raise()

    async def drain(self) -> None:
        """Wait until everything put is written and hashed."""
        if self._io is not None:
            await self._loop.run_in_executor(self._io, _nothing)
        self._raise()

    def sync(self) -> None:
        """Blocking: everything written is on disk when this returns."""
        self._writer.sync()

    def close(self) -> None:
        """Stop the helper threads (pending writes are finished or dropped, never left
        running against a closed descriptor). Does not close the file."""
        if self._io is not None:
            self._io.shutdown(wait=True, cancel_futures=True)
        self._writer.stop()

    def _raise(self) -> None:
        if self._error is not None:
            raise TransferError(f"cannot write the download: {self._error.strerror}")


def _nothing() -> None:
    return None
