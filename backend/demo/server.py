"""An SFTP server on 127.0.0.1 built on asyncssh, rooted (chrooted) in one local folder.

The same server backs ``ferry demo`` and the in-process test fixture. It accepts public-key
auth for the keys it is given and, optionally, passwords; it can answer ``sha256sum PATH...``
over an exec channel (paths confined to the root) like a real shell account, or refuse exec
like an sftp-only account. Tests inject faults by passing their own ``SFTPServer`` subclass.
"""

from __future__ import annotations

import hmac
import os
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend.checksum import local_sha256
from backend.errors import FerryError

SFTPFactory = Callable[..., asyncssh.SFTPServer]


class _Server(asyncssh.SSHServer):
    def __init__(self, passwords: dict[str, str]) -> None:
        self._passwords = passwords

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return bool(self._passwords)

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._passwords.get(username)
        return expected is not None and hmac.compare_digest(expected, password)


def confine(root: Path, remote_path: str) -> Path:
    """Map an absolute or relative server path onto ``root``; raise if it would escape."""
    norm = posixpath.normpath("/" + remote_path.lstrip("/"))
    local = (root / norm.lstrip("/")).resolve()
    root_resolved = root.resolve()
    if local != root_resolved and root_resolved not in local.parents:
        raise PermissionError(remote_path)
    return local


def _exec_handler(root: Path) -> Callable[[asyncssh.SSHServerProcess[str]], object]:
    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        try:
            argv = shlex.split(process.command or "")
        except ValueError:
            argv = []
        if not argv or argv[0] != "sha256sum":
            process.stderr.write(f"{argv[0] if argv else 'shell'}: not allowed here\n")
            process.exit(127)
            return
        paths = [a for a in argv[1:] if a != "--"]
        status = 0
        for arg in paths:
            try:
                local = confine(root, arg)
                digest = await local_sha256(str(local))
                process.stdout.write(f"{digest}  {arg}\n")
            except (OSError, FerryError):
                process.stderr.write(f"sha256sum: {arg}: No such file or directory\n")
                status = 1
        process.exit(status)

    return handle


@dataclass
class RunningServer:
    """A listening server: where it is, and how to stop it."""

    host: str
    port: int
    root: Path
    host_key: asyncssh.SSHKey
    _acceptor: asyncssh.SSHAcceptor = field(repr=False)

    def close(self) -> None:
        self._acceptor.close()

    async def wait_closed(self) -> None:
        await self._acceptor.wait_closed()


async def start_sftp_server(
    root: Path,
    *,
    host_key: asyncssh.SSHKey,
    authorized_keys: list[asyncssh.SSHKey] | None = None,
    passwords: dict[str, str] | None = None,
    allow_exec: bool = True,
    sftp_factory: SFTPFactory | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningServer:
    """Start serving ``root`` over SFTP on ``host:port`` (port 0: a free one)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    chroot = os.fsencode(str(root.resolve()))
    factory = sftp_factory or asyncssh.SFTPServer
    authorized = None
    if authorized_keys:
        authorized = asyncssh.import_authorized_keys(
            "".join(k.export_public_key("openssh").decode() for k in authorized_keys)
        )
    pw = dict(passwords or {})
    acceptor = await asyncssh.listen(
        host,
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        server_factory=lambda: _Server(pw),
        sftp_factory=lambda chan: factory(chan, chroot=chroot),
        process_factory=_exec_handler(root) if allow_exec else None,
        allow_scp=False,
        keepalive_interval=30,
        window=16 * 1024 * 1024,
    )
    bound_port = acceptor.sockets[0].getsockname()[1]
    return RunningServer(
        host=host, port=bound_port, root=root, host_key=host_key, _acceptor=acceptor
    )
