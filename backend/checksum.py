"""SHA-256 of one file on demand (the browser's file-info panel): local, or remote.

Remote: ``sha256sum`` over an exec channel when the site allows exec (the path is
``shlex.quote``d), falling back to reading the file through SFTP when exec is refused, fails or
answers nonsense (sftp-only accounts). Local: read the file in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex

import asyncssh

from backend.remote import read_bytes, sftp_errors

CHUNK = 1 << 20
EXEC_TIMEOUT = 120.0
_DIGEST = re.compile(r"^\\?([0-9a-f]{64})\s")


def local_sha256_sync(path: str) -> str:
    digest = hashlib.sha256()
    with sftp_errors(path), open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def local_sha256(path: str) -> str:
    return await asyncio.to_thread(local_sha256_sync, path)


async def exec_sha256(conn: asyncssh.SSHClientConnection, path: str) -> str | None:
    """The server's own ``sha256sum`` of ``path``; None when exec is refused or unusable."""
    try:
        result = await conn.run(
            f"sha256sum -- {shlex.quote(path)}", check=False, timeout=EXEC_TIMEOUT
        )
    except (asyncssh.Error, OSError, TimeoutError):
        return None
    if result.exit_status != 0 or not isinstance(result.stdout, str):
        return None
    match = _DIGEST.match(result.stdout)
    return match.group(1) if match else None


async def sftp_sha256(sftp: asyncssh.SFTPClient, path: str) -> str:
    digest = hashlib.sha256()
    with sftp_errors(path):
        async with sftp.open(path, "rb") as fh:
            while chunk := await read_bytes(fh, CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


async def remote_sha256(
    conn: asyncssh.SSHClientConnection,
    sftp: asyncssh.SFTPClient,
    path: str,
    *,
    allow_exec: bool = True,
) -> str:
    """SHA-256 hex digest of a remote file: exec when allowed, else read through SFTP."""
    if allow_exec:
        digest = await exec_sha256(conn, path)
        if digest is not None:
            return digest
    return await sftp_sha256(sftp, path)
