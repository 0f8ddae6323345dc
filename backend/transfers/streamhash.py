"""The server hashing a big upload while it is being written, so sha256 verification ends
with the last byte instead of starting after it.

A verified upload used to ask the server for ``sha256(temp file)`` only once every byte had
been written: on loopback that re-read costs ~0.7 s per GiB *after* the transfer (the
server reads the file back and hashes it while the client waits). :class:`StreamingHash`
instead opens one exec channel when the upload starts and runs::

    exec 3<"$1"                      # the temp file, opened once
    while read n; do head -c "$n" <&3; done | openssl dgst -sha256 -r   (or sha256sum)

The client announces, as ``n`` lines, how far the file is written *and acknowledged* in
order (:meth:`StreamingHash.advance`, fed the upload window's contiguous offset: every byte
below it has been answered by the server, so it is in the file for any reader). The server
hashes each announced stretch while the rest uploads; at the end the client announces the
remainder, closes the channel's stdin and reads the digest (:meth:`StreamingHash.result`).

It is only a faster path to the same answer: when the channel cannot be opened, the tools
are missing, the stream breaks or its digest differs from the client's, the caller falls
back to :class:`backend.transfers.verify.RemoteHasher` hashing the whole file, which alone
decides a mismatch. ``head -c N`` reads exactly ``N`` bytes from a regular file (GNU, BSD,
BusyBox), so the shared offset of descriptor 3 advances in step with the announcements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import weakref

import asyncssh

from backend.netaddr import is_loopback
from backend.transfers.verify import DIGEST_LINE, PICK_TOOL, PROBE_TIMEOUT

log = logging.getLogger("ferry.transfers")

STREAM_AT = 64 * 1024 * 1024  # uploads at least this big (still to send) are hashed as they go
# A server on this very machine shares our CPUs: the stream's pipe costs it ~0.5 s of CPU per
# GiB more than hashing the file once at the end, which there cancels the overlap (measured
# 3.89 s without vs 4.17 s with, 1 GiB over loopback). Tests turn it on.
SAME_HOST_TOO = False
STEP = 16 * 1024 * 1024  # announce at most this often: each stretch costs the server a `head`
RESULT_TIMEOUT = 600.0
# OpenSSH allows 10 sessions per connection (MaxSessions): 4 lanes + 4 hashing shells leave
# room for one stream; a refused session would also read as "exec refused" to the shells.
STREAMS_PER_CONNECTION = 1
_streams: weakref.WeakKeyDictionary[asyncssh.SSHClientConnection, int] = (
    weakref.WeakKeyDictionary()
)

# One line, POSIX sh, the path passed as $1 (never spliced into the script). "ready" is
# printed only once the file is open and the tool chosen.
_SCRIPT = (
    'exec 3<"$1" || exit 3; ' + PICK_TOOL + "echo ready; "
    'while read n; do head -c "$n" <&3 || exit 4; done | $H'
)


class StreamingHash:
    """One upload's server-side running SHA-256 of ``path`` (see the module docstring)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, path: str, start: int) -> None:
        self._conn: asyncssh.SSHClientConnection | None = conn
        _streams[conn] = _streams.get(conn, 0) + 1
        self._announced = 0
        self._contig = start
        self._proc: asyncssh.SSHClientProcess[bytes] | None = None
        self._broken = False
        self._opening = asyncio.ensure_future(self._open(conn, path))

    async def _open(self, conn: asyncssh.SSHClientConnection, path: str) -> None:
        command = "sh -c " + shlex.quote(_SCRIPT) + " ferry " + shlex.quote(path)
        try:
            proc = await conn.create_process(command, encoding=None,
                                             stderr=asyncssh.DEVNULL)
        except (asyncssh.Error, OSError, UnicodeError) as exc:
            log.debug("no streaming hash for %s: %s", path, exc)
            self._broken = True
            return
        self._proc = proc
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), PROBE_TIMEOUT)
        except (TimeoutError, asyncssh.Error, OSError):
            line = b""
        if line != b"ready\n":
            log.debug("no streaming hash for %s: the server answered %r", path, line[:80])
            self._fail()
            return
        self._announce(self._contig)

    def _fail(self) -> None:
        self._broken = True
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.close()

    def _announce(self, upto: int) -> None:
        if self._broken or self._proc is None or upto <= self._announced:
            return
        try:
            self._proc.stdin.write(b"%d\n" % (upto - self._announced))
        except (asyncssh.Error, OSError, BrokenPipeError):
            self._fail()
            return
        self._announced = upto

    def advance(self, contig: int) -> None:
        """Every byte below ``contig`` is written and acknowledged (cheap; call per block)."""
        self._contig = contig
        if contig - self._announced >= STEP:
            self._announce(contig)

    async def result(self, total: int) -> str | None:
        """The server's digest of the first ``total`` bytes, or None if the stream failed."""
        with contextlib.suppress(Exception):
            await self._opening
        if self._broken or self._proc is None:
            return None
        self._announce(total)
        proc = self._proc
        try:
            proc.stdin.write_eof()
            out = await asyncio.wait_for(proc.stdout.read(), RESULT_TIMEOUT)
        except (TimeoutError, asyncssh.Error, OSError):
            self._fail()
            return None
        match = DIGEST_LINE.match(out)
        return match.group(1).decode() if match else None

    def close(self) -> None:
        """Stop it (the server's shell sees end of input and exits)."""
        self._opening.cancel()
        self._fail()
        if self._conn is not None:
            _streams[self._conn] = max(0, _streams.get(self._conn, 1) - 1)
            self._conn = None


def start_streaming(conn: asyncssh.SSHClientConnection | None, path: str, start: int,
                    total: int) -> StreamingHash | None:
    """A :class:`StreamingHash` for an upload of ``[start, total)`` into ``path``, or None
    when the upload is too small to be worth a channel, the server runs on this machine, or
    ``conn`` already carries :data:`STREAMS_PER_CONNECTION` streams."""
    if conn is None or conn.is_closed() or total - start < STREAM_AT:
        return None
    if not SAME_HOST_TOO and _same_host(conn):
        return None
    if _streams.get(conn, 0) >= STREAMS_PER_CONNECTION:
        return None
    return StreamingHash(conn, path, start)


def _same_host(conn: asyncssh.SSHClientConnection) -> bool:
    peer = conn.get_extra_info("peername")
    return bool(peer) and is_loopback(str(peer[0]).split("%")[0])  # without an IPv6 zone
