"""Checking a transferred file: the server's ``sha256sum`` over exec, or size + tail re-read
(read-back of the whole file, where the server cannot hash: :mod:`backend.transfers.readback`).

:class:`RemoteHasher` keeps up to :data:`EXEC_AT_ONCE` long-lived ``sh`` processes on the
server (one exec channel each, opened once: every new channel costs sshd a login-shell start
and several round trips) and writes one ``sha256sum -- 'a' 'b' ...`` command line per batch
(``openssl dgst -sha256`` when the server has a working one: several times faster; every path
``shlex.quote``d, stdin from /dev/null) followed by a marker line carrying the exit
status and a random nonce, so a batch costs one round trip plus the hashing. Batching needs no
timer: a request goes out at once when a shell is free; while all are busy, requests pile up
and the next free shell takes up to :data:`BATCH` of them in one command.

When no shell can be kept (an exec channel refused, a restricted account answering without
the marker), each batch runs as its own exec (``conn.run``) as before; when exec cannot be used
at all (the site forbids it, or the account is sftp-only) it answers None and the caller
falls back to read-back or :func:`tail_matches`: the remote size must equal the local size
and the last :data:`TAIL` bytes read back from the server must equal the local ones.

Whether exec works is learnt once per site pool (``pool.exec_ok``) from the first answer: a
refused channel, exit 126/127, the answer of ``ForceCommand internal-sftp`` ("This service
allows sftp connections only.", exit 1), or any non-zero status with no digest at all in
the first answer mean "no exec" for the rest of the session, so an sftp-only account costs
one exec attempt, not one per batch. :meth:`RemoteHasher.prefix_sha256` hashes the first
``n`` bytes of a file (``head -c n < file | sha256sum`` in a kept shell), which a resumed
upload compares with its local prefix before appending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
from collections.abc import Coroutine

import asyncssh

from backend.errors import ConnectError
from backend.names import NAME_CODEC
from backend.remote import read_bytes
from backend.transfers.pool import SitePool

log = logging.getLogger("ferry.transfers")

TAIL = 64 * 1024
BATCH = 64
EXEC_TIMEOUT = 600.0
EXEC_AT_ONCE = 4
PROBE_TIMEOUT = 10.0
DIGEST_LINE = re.compile(rb"^\\?([0-9a-f]{64}) [ *]")
# what OpenSSH's sshd answers an exec on a ForceCommand internal-sftp account (exit 1)
SFTP_ONLY = b"sftp connections only"


# The shell's hashing tool: OpenSSL's when it hashes correctly (it uses the CPU's SHA
# instructions: 4x coreutils' speed here), else sha256sum. Both print "<hex> [ *]<name>" and
# escape odd names the same way.
_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PICK_TOOL = (
    "H=sha256sum; case \"$(openssl dgst -sha256 -r -- /dev/null 2>/dev/null </dev/null)\" in "
    f"{_EMPTY}*) H='openssl dgst -sha256 -r';; esac; "
)


class _ShellGone(Exception):
    """The kept shell stopped answering (closed or unparseable); use a fresh one or exec."""


class _Shell:
    """One ``sh`` on the server that runs our ``sha256sum`` command lines one at a time."""

    def __init__(self, conn: asyncssh.SSHClientConnection,
                 proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.conn = conn
        self.proc = proc
        self.marker = b"FERRY-" + secrets.token_hex(8).encode()

    @classmethod
    async def start(cls, conn: asyncssh.SSHClientConnection) -> _Shell:
        proc = await conn.create_process("sh", encoding=None, stderr=asyncssh.DEVNULL)
        shell = cls(conn, proc)
        try:
            status, _ = await asyncio.wait_for(shell._command(PICK_TOOL.encode()), PROBE_TIMEOUT)
        except BaseException:
            shell.close()
            raise
        if status != 0:
            shell.close()
            raise _ShellGone("the shell did not answer")
        return shell

    async def _command(self, command: bytes) -> tuple[int, list[bytes]]:
        line = command + b"printf '%s %d\\n' " + self.marker + b' "$?"\n'
        self.proc.stdin.write(line)
        lines: list[bytes] = []
        prefix = self.marker + b" "
        while True:
            out = await self.proc.stdout.readline()
            if not out.endswith(b"\n"):
                raise _ShellGone("the shell closed")
            if out.startswith(prefix):
                try:
                    return int(out[len(prefix):].strip()), lines
                except ValueError:
                    raise _ShellGone("unexpected answer from the shell") from None
            lines.append(out)

    async def sha256sum(self, paths: list[str]) -> tuple[int, list[bytes]]:
        quoted = " ".join(shlex.quote(p) for p in paths)
        command = f"$H -- {quoted} </dev/null 2>/dev/null; "
        return await self._command(command.encode(NAME_CODEC))

    async def prefix_sha256sum(self, path: str, length: int) -> tuple[int, list[bytes]]:
        """The digest of the first ``length`` bytes (a missing or shorter file hashes to
        something else, which the caller treats as a mismatch)."""
        command = f"head -c {int(length)} < {shlex.quote(path)} 2>/dev/null | $H 2>/dev/null; "
        return await self._command(command.encode(NAME_CODEC))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.close()


_Request = tuple[str, int | None, asyncio.Future[str | None]]  # path, prefix length, answer


class RemoteHasher:
    """``await hasher.sha256(path)`` -> hex digest, or None when exec cannot be used."""

    def __init__(self, pool: SitePool) -> None:
        self._pool = pool
        self._pending: list[_Request] = []
        self._running = 0  # batches under way (each holds a shell or an exec channel)
        self._idle: list[_Shell] = []
        self._shells_ok: bool | None = None  # False: run each batch as its own exec
        self._tasks: set[asyncio.Task[None]] = set()
        self._starting: asyncio.Future[_Shell | None] | None = None

    def usable(self) -> bool:
        """Whether the server may be asked to hash (the site allows exec, the account has it)."""
        return not (self._pool.exec_ok is False or (
            self._pool.site is not None and not self._pool.site.allow_exec
        ))

    async def sha256(self, path: str) -> str | None:
        if not self.usable():
            return None
        return await self._ask(path, None)

    async def prefix_sha256(self, path: str, length: int) -> str | None:
        """The server's digest of the first ``length`` bytes of ``path`` (None: it cannot
        hash, or only without a kept shell, e.g. an account allowing ``sha256sum`` alone)."""
        if not self.usable():
            return None
        return await self._ask(path, length)

    async def _ask(self, path: str, length: int | None) -> str | None:
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((path, length, fut))
        self._kick()
        return await fut

    def warm(self) -> None:
        """Start one shell now, so the first verification does not wait for it."""
        if self.usable() and self._shells_ok is not False and not self._idle \
                and self._running == 0:
            self._running += 1
            self._spawn(self._warm())

    async def _warm(self) -> None:
        try:
            self._starting = asyncio.ensure_future(self._shell(waiting=False))
            shell = await self._starting
            if shell is not None:
                self._idle.append(shell)
        finally:
            self._running -= 1
            self._kick()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("verification batch failed: %s", task.exception())

    def _kick(self) -> None:
        while self._pending and self._running < EXEC_AT_ONCE:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            self._running += 1
            self._spawn(self._run(batch))

    async def _run(self, requests: list[_Request]) -> None:
        # callers gone: skip them
        batch = [(p, f) for p, n, f in requests if n is None and not f.done()]
        prefixes = [(p, n, f) for p, n, f in requests if n is not None and not f.done()]
        try:
            digests = await self._hash([p for p, _ in batch]) if batch else None
            if digests is None and len(batch) > 1 and self._pool.exec_ok:
                digests = []
                for p, _ in batch:  # one bad path must not cost the others their digest
                    one = await self._hash([p])
                    digests.append(one[0] if one else None)
            for i, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(digests[i] if digests else None)
            for p, n, fut in prefixes:  # (rare: resumed uploads) one command line each
                digest = await self._hash_prefix(p, n) if self.usable() else None
                if not fut.done():
                    fut.set_result(digest)
        except BaseException as exc:
            for _, _, fut in requests:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else ConnectError(
                        f"{self._pool.name}: verification was interrupted"))
            raise
        finally:
            self._running -= 1
            self._kick()

    async def _shell(self, *, waiting: bool = True) -> _Shell | None:
        starting = self._starting
        if waiting and starting is not None and not starting.done() and not self._idle:
            # the warm-up is starting one right now: wait for it rather than start another
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
        while self._idle:
            shell = self._idle.pop()
            if not shell.conn.is_closed() and not shell.proc.is_closing():
                return shell
            shell.close()
        if self._shells_ok is False:
            return None
        conn = self._pool.connection()
        if conn is None:
            return None
        try:
            shell = await _Shell.start(conn)
        except AttributeError:  # asyncssh on a channel closed mid-open (connection dying)
            raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
        except asyncssh.ChannelOpenError:
            if conn.is_closed():
                raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
            self._pool.exec_ok = False  # the server refuses exec (sftp-only account)
            return None
        except (_ShellGone, TimeoutError, asyncssh.Error, OSError):
            if conn.is_closed():
                raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
            self._shells_ok = False  # a restricted account: one exec per batch from now on
            return None
        self._shells_ok = True
        return shell

    async def _hash(self, paths: list[str]) -> list[str | None] | None:
        shell = await self._shell()
        if shell is None:
            return await self._exec_now(paths) if self.usable() else None
        try:
            status, lines = await asyncio.wait_for(shell.sha256sum(paths), EXEC_TIMEOUT)
        except BaseException as exc:
            shell.close()  # its state is unknown now
            if isinstance(exc, (_ShellGone, TimeoutError, asyncssh.Error, OSError)):
                if shell.conn.is_closed():
                    raise ConnectError(
                        f"{self._pool.name}: connection lost while verifying") from None
                return None
            raise
        self._idle.append(shell)
        return self._parse(status, lines, paths)

    async def _hash_prefix(self, path: str, length: int) -> str | None:
        """Through a kept shell only (a restricted account running ``sha256sum`` alone
        cannot pipe ``head`` into it): None otherwise, and the caller reads the prefix
        back instead."""
        shell = await self._shell()
        if shell is None:
            return None
        try:
            status, lines = await asyncio.wait_for(shell.prefix_sha256sum(path, length),
                                                   EXEC_TIMEOUT)
        except BaseException as exc:
            shell.close()
            if isinstance(exc, (_ShellGone, TimeoutError, asyncssh.Error, OSError)):
                if shell.conn.is_closed():
                    raise ConnectError(
                        f"{self._pool.name}: connection lost while verifying") from None
                return None
            raise
        self._idle.append(shell)
        lines = [ln for ln in lines if ln.strip()]
        match = DIGEST_LINE.match(lines[0]) if status == 0 and len(lines) == 1 else None
        return match.group(1).decode() if match else None

    def _parse(self, status: int, lines: list[bytes], paths: list[str],
               stderr: bytes = b"") -> list[str | None] | None:
        lines = [ln for ln in lines if ln.strip()]
        digests = [m.group(1).decode() if (m := DIGEST_LINE.match(ln)) else None for ln in lines]
        if status == 0 and len(digests) == len(paths) and all(digests):
            self._pool.exec_ok = True
            return digests
        if self._pool.exec_ok is None and (
            status in (126, 127)  # no sha256sum there (or no shell)
            or (not lines and len(paths) == 1)  # an sftp-only account answering with nothing
            or SFTP_ONLY in b"".join(lines) + stderr  # ForceCommand internal-sftp
            or (status != 0 and not any(digests))  # not one digest in the first answer
        ):
            # learnt once for this pool: no more exec attempts this session (docs/transfers.md)
            log.info("%s: the server cannot hash files (exec status %d); verifying without "
                     "exec from now on", self._pool.name, status)
            self._pool.exec_ok = False
        return None

    async def _exec_now(self, paths: list[str]) -> list[str | None] | None:
        conn = self._pool.connection()
        if conn is None:
            return None
        command = "sha256sum -- " + " ".join(shlex.quote(p) for p in paths)
        try:
            command.encode("utf-8")
        except UnicodeEncodeError:
            # a name that is not UTF-8 (spelled \xHH, backend/names.py): conn.run sends text
            # only, so this batch cannot be asked here; the caller falls back to read-back
            return None
        try:
            result = await conn.run(command, check=False, timeout=EXEC_TIMEOUT, input="",
                                    encoding=None)
        except AttributeError:  # asyncssh on a channel closed mid-open (connection dying)
            raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
        except asyncssh.ChannelOpenError:
            if conn.is_closed():
                raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
            self._pool.exec_ok = False  # the server refuses exec (sftp-only account)
            return None
        except (asyncssh.ProcessError, TimeoutError, asyncssh.TimeoutError):
            return None
        except (asyncssh.Error, OSError):
            raise ConnectError(f"{self._pool.name}: connection lost while verifying") from None
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        err = result.stderr if isinstance(result.stderr, bytes) else b""
        status = result.exit_status if result.exit_status is not None else 255
        return self._parse(status, out.splitlines(keepends=True), paths, err)

    def close(self) -> None:
        for shell in self._idle:
            shell.close()
        self._idle.clear()


async def remote_tail(sftp: asyncssh.SFTPClient, path: str, size: int) -> bytes:
    """The last ``TAIL`` bytes (or fewer) of a remote file of ``size`` bytes."""
    start = max(0, size - TAIL)
    async with sftp.open(path, "rb", block_size=TAIL, max_requests=4) as fh:
        out = bytearray()
        while len(out) < size - start:
            chunk = await read_bytes(fh, size - start - len(out), start + len(out))
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
