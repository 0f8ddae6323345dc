"""Sizing SSH receive windows to the link, and feeding asyncssh's receive path in slices.

Every SFTP channel Ferry opens goes through :func:`start_sftp`. A channel's receive window
bounds a download to ``window / round-trip time``: on a 40 ms WAN the 2 MiB OpenSSH default
gives ~50 MiB/s, so a WAN needs a big one (16 MiB: docs/architecture.md §5). On a fast link a
big window hurts instead: sshd then runs up to 16 MiB ahead of a Python client and spends its
time in partial socket writes (measured on loopback, 1 GiB download: 3.7 s with 2 MiB windows vs
4.5 s with 16 MiB, medians of 5, sshd's system time doubling). So channels open with
:data:`WINDOW_MIN`; the first SFTP channel of a connection times one ``stat`` (one round
trip, sent alongside the caller's own first requests), and every channel of that connection
is then given a window of ``round trip x`` :data:`WINDOW_RATE`, within
:data:`WINDOW_MIN`..:data:`WINDOW_MAX` (a receiver may raise its window at any time: the
extra credit goes out with the next window adjustment). The probe then times
:data:`PROBES` - 1 more round trips and keeps the least as the link's (:func:`round_trip`).

:func:`slice_reads` is the other receive-side fix, and :func:`skip_ignore_packets` a send-side
one (see their docstrings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE

from backend.names import NAME_CODEC

log = logging.getLogger("ferry.ssh")

WINDOW_MIN = 2 * 1024 * 1024  # OpenSSH's own default
WINDOW_MAX = 16 * 1024 * 1024
WINDOW_RATE = 400 * 1024 * 1024  # bytes/s one channel's window should allow at the measured RTT
RECV_SLICE = 64 * 1024
# Round trips timed per connection; the least is its RTT (what the download lanes go by:
# backend/transfers/copier.py download_lanes). One sample on a busy machine can be this process
# waiting for a CPU, or the probe queued behind the caller's first requests, not the link.
PROBES = 5


def window_for(rtt: float) -> int:
    """The receive window for a link with round-trip time ``rtt`` seconds."""
    return int(min(WINDOW_MAX, max(WINDOW_MIN, rtt * WINDOW_RATE)))


@dataclass
class _Link:
    window: int | None = None  # None until measured
    rtt: float | None = None  # seconds, None until measured
    channels: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    probe: asyncio.Task[None] | None = None


_LINKS: weakref.WeakKeyDictionary[asyncssh.SSHClientConnection, _Link] = (
    weakref.WeakKeyDictionary()
)


def round_trip(conn: asyncssh.SSHClientConnection) -> float | None:
    """The least round-trip time measured so far on ``conn``'s first SFTP channel (None:
    not yet)."""
    link = _LINKS.get(conn)
    return link.rtt if link is not None else None


def receive_window(sftp: asyncssh.SFTPClient) -> int | None:
    """The receive window of ``sftp``'s channel (None if it cannot be found)."""
    chan = _channel(sftp)
    return chan.get_recv_window() if chan is not None else None


def _channel(sftp: asyncssh.SFTPClient) -> Any:
    # asyncssh has no public way from an SFTPClient to its channel; its writer has one
    writer = getattr(getattr(sftp, "_handler", None), "_writer", None)
    return getattr(writer, "channel", None)


def _grow(chan: Any, size: int) -> None:
    # asyncssh tops the window back up to ``_init_recv_window`` as data is consumed;
    # raising it makes the next adjustment grant the extra credit
    if hasattr(chan, "_init_recv_window") and chan._init_recv_window < size:
        chan._init_recv_window = size


async def start_sftp(conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
    """Open an SFTP channel on ``conn`` with its window sized to the link.

    Paths go through :data:`backend.names.NAME_CODEC`: a name that is not valid UTF-8 is
    listed as ``\\xHH`` escapes (instead of asyncssh failing the whole listing with "Unable
    to decode name") and those escapes address the server's exact bytes again.
    """
    sftp = await conn.start_sftp_client(path_encoding=NAME_CODEC)
    link = _LINKS.get(conn)
    if link is None:
        link = _LINKS[conn] = _Link()
    chan = _channel(sftp)
    if chan is None:
        return sftp
    if link.window is not None:
        _grow(chan, link.window)
        return sftp
    link.channels.add(chan)
    if link.probe is None:
        link.probe = asyncio.ensure_future(_probe(link, sftp))
    return sftp


async def _probe(link: _Link, sftp: asyncssh.SFTPClient) -> None:
    """Time a cheap request (its round trip) and size the connection's windows by the first
    sample; then time :data:`PROBES` - 1 more, keeping the least as ``link.rtt``."""
    with contextlib.suppress(Exception):
        for sample in range(PROBES):
            began = time.monotonic()
            with contextlib.suppress(asyncssh.SFTPError):  # a refusal is a round trip too
                await sftp.stat(".")
            rtt = time.monotonic() - began
            link.rtt = rtt if link.rtt is None else min(link.rtt, rtt)
            if sample:
                continue
            link.window = window_for(rtt)
            log.debug("round trip %.1f ms: SFTP receive windows %d KiB", rtt * 1000,
                      link.window // 1024)
            for chan in list(link.channels):
                _grow(chan, link.window)
            link.channels.clear()


def slice_reads(conn: asyncssh.SSHClientConnection) -> None:
    """Hand asyncssh each socket read in slices of at most :data:`RECV_SLICE` bytes.

    asyncssh appends a read to one ``bytes`` buffer and re-slices the remainder after every
    packet it takes off the front, so a 256 KiB read (asyncio's read size) holding eight
    32 KiB packets is copied about four times over; with 64 KiB slices that copy stays
    bounded (measured on a loopback 1 GiB download: client CPU ~2.2 s -> ~1.6 s). Only the
    protocol's ``data_received`` (the asyncio Protocol interface) is wrapped; the bytes and
    their order are unchanged.
    """
    deliver = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        if len(data) <= RECV_SLICE:
            deliver(data, datatype)
            return
        view = memoryview(data)
        for start in range(0, len(data), RECV_SLICE):
            deliver(view[start:start + RECV_SLICE].tobytes(), datatype)

    conn.data_received = data_received  # type: ignore[method-assign]  # this connection only


_EMPTY_STRING = b"\0\0\0\0"  # an SSH string of length 0, the payload of asyncssh's filler


def skip_ignore_packets(conn: asyncssh.SSHClientConnection) -> None:
    """Stop asyncssh from sending an empty ``SSH_MSG_IGNORE`` ahead of every packet.

    asyncssh 2.x puts one before each packet once encryption is on: a countermeasure against
    the old CBC-mode plaintext-recovery attack, useless with the ciphers Ferry negotiates
    (AES-GCM, ChaCha20-Poly1305, AES-CTR; OpenSSH sends none). It doubles the packets Ferry
    sends, each one encrypted, random-padded and written by its own system call: on a
    loopback 1 GiB upload ~33,000 extra packets, ~0.2 s of client CPU, and as many again for
    sshd to decrypt. The filler is recognised by its exact form (type 2, empty string) and
    kept if a CBC cipher was ever negotiated.
    """
    send = conn.send_packet

    def send_packet(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if (pkttype == MSG_IGNORE and args == (_EMPTY_STRING,)
                and not getattr(conn, "_enc_alg_cs", b"").endswith(b"-cbc")):
            return
        send(pkttype, *args, **kwargs)

    conn.send_packet = send_packet  # type: ignore[method-assign]  # this connection only
