"""The provider-server matrix: the SFTP servers Ferry's users really meet, started on 127.0.0.1.

Each kind is a real program (or, for the S3-backed gateway, an asyncssh server that behaves like
one) and is described by a :class:`MatrixServer`: how to log in (``site()``), where the served
files are on this machine (``root``) and what that folder is called on the server
(``remote_dir``). A missing program is a failure, never a skip (``.ci/run`` installs them).

- ``openssh``: OpenSSH sshd with a shell and ``sftp-server`` (exec works).
- ``norename``: sshd whose ``sftp-server -P`` denies ``rename`` and ``posix-rename``.
- ``noposix``: ``sftp-server -P posix-rename,hardlink,fsync,limits,statvfs,copy-data,
  expand-path`` (plain SFTPv3 rename only, no extensions but the listing ones).
- ``readonly``: ``sftp-server -R``.
- ``chroot``: ``ChrootDirectory`` + ``ForceCommand internal-sftp`` (exec answers "This service
  allows sftp connections only." and exit 1); files under ``/data`` inside the chroot.
- ``proftpd``: ProFTPD ``mod_sftp`` with key auth (refuses exec; offers ``check-file``).
- ``s3gateway``: in-process asyncssh server like AWS Transfer Family on S3: SFTP only, no exec,
  writes strictly in order, no reopen/append of an existing file, no posix-rename, no setstat,
  at most 10 sessions per connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from backend.demo.server import RunningServer, start_sftp_server
from backend.hostkeys import key_line
from backend.sites.model import Site, default_user
from tests.servers import SshdServer, free_port, start_sshd, write_private_key

PROFTPD = "/usr/sbin/proftpd"
PROFTPD_MODULES = "/usr/lib/proftpd"
KINDS = ("openssh", "norename", "noposix", "readonly", "chroot", "proftpd", "s3gateway")
CHROOT_BASE = Path("/var/lib/ferry-tests")
NOPOSIX_DENY = "posix-rename,hardlink,fsync,limits,statvfs,fstatvfs,copy-data,expand-path"


@dataclass
class MatrixServer:
    """One running server of the matrix (see the module docstring for the kinds)."""

    kind: str
    host: str
    port: int
    user: str
    host_key_line: str
    client_key_path: Path
    root: Path  # the served folder on this machine
    remote_dir: str  # ... and its path as the server names it
    stop_fn: Any = field(repr=False, default=None)

    def site(self, name: str | None = None, *, pinned: bool = True, **changes: object) -> Site:
        site = Site(
            name=name or self.kind,
            host=self.host,
            port=self.port,
            user=self.user,
            auth="key",
            key_file=str(self.client_key_path),
            host_keys=[self.host_key_line] if pinned else [],
            remote_dir=self.remote_dir,
        )
        for key, value in changes.items():
            setattr(site, key, value)
        return site.validate()

    def remote(self, *parts: str) -> str:
        return "/".join([self.remote_dir.rstrip("/"), *parts])

    def stop(self) -> None:
        if self.stop_fn is not None:
            self.stop_fn()


def _from_sshd(kind: str, server: SshdServer, root: Path, remote_dir: str) -> MatrixServer:
    return MatrixServer(kind=kind, host=server.host, port=server.port, user=server.user,
                        host_key_line=server.host_key_line,
                        client_key_path=server.client_key_path, root=root,
                        remote_dir=remote_dir, stop_fn=server.stop)


def start_openssh_kind(kind: str, workdir: Path, client_key: asyncssh.SSHKey) -> MatrixServer:
    """An sshd of one of the OpenSSH kinds, serving ``workdir/files`` (or the chroot's /data)."""
    if kind == "chroot":
        # every component of a ChrootDirectory must be root-owned and not group/world-writable,
        # which rules out anything under /tmp
        CHROOT_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(CHROOT_BASE, 0o755)
        chroot = Path(tempfile.mkdtemp(dir=CHROOT_BASE))
        os.chmod(chroot, 0o755)
        data = chroot / "data"
        data.mkdir()
        extra = f"ChrootDirectory {chroot}\nForceCommand internal-sftp\n"
        server = start_sshd(workdir / "sshd", client_key, extra_config=extra,
                            subsystem="internal-sftp")

        def stop() -> None:
            server.stop()
            shutil.rmtree(chroot, ignore_errors=True)

        found = _from_sshd(kind, server, data, "/data")
        found.stop_fn = stop
        return found
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)
    args = {"openssh": "", "norename": "-P rename,posix-rename",
            "noposix": f"-P {NOPOSIX_DENY}", "readonly": "-R"}[kind]
    server = start_sshd(workdir / "sshd", client_key, sftp_args=args)
    return _from_sshd(kind, server, files, str(files))


# -- ProFTPD mod_sftp ------------------------------------------------------------------------


def start_proftpd(workdir: Path, client_key: asyncssh.SSHKey) -> MatrixServer:
    """ProFTPD with mod_sftp on a free loopback port, key auth for this machine's user."""
    if not os.path.exists(PROFTPD) or not os.path.exists(f"{PROFTPD_MODULES}/mod_sftp.so"):
        raise RuntimeError("ProFTPD mod_sftp is missing: install proftpd-core and "
                           "proftpd-mod-crypto (.ci/run does)")
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    files = workdir / "files"
    files.mkdir(exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    host_key_path = workdir / "host_rsa_key"
    host_key_path.write_bytes(host_key.export_private_key("pkcs1-pem"))
    os.chmod(host_key_path, 0o600)
    client_key_path = write_private_key(client_key, workdir / "id_client")
    (workdir / "authorized_keys").write_bytes(client_key.export_public_key("rfc4716"))
    port = free_port()
    config = workdir / "proftpd.conf"
    user = default_user()
    config.write_text(
        f"ModulePath {PROFTPD_MODULES}\n"
        "<IfModule !mod_sftp.c>\n  LoadModule mod_sftp.c\n</IfModule>\n"
        'ServerName "ferry-test-proftpd"\n'
        "ServerType standalone\n"
        "DefaultServer on\n"
        f"Port {port}\n"
        "DefaultAddress 127.0.0.1\n"
        "SocketBindTight on\n"
        "UseIPv6 off\n"
        "UseReverseDNS off\n"
        f"PidFile {workdir / 'proftpd.pid'}\n"
        f"ScoreboardFile {workdir / 'proftpd.scoreboard'}\n"
        "DelayTable none\n"
        "WtmpLog off\n"
        "TransferLog none\n"
        f"SystemLog {workdir / 'proftpd.log'}\n"
        "User nobody\n"
        "Group nogroup\n"
        "RootLogin on\n"
        "UseFtpUsers off\n"
        "RequireValidShell off\n"
        "AllowOverwrite on\n"
        "Umask 022\n"
        "MaxInstances 100\n"
        "SFTPEngine on\n"
        f"SFTPLog {workdir / 'sftp.log'}\n"
        f"SFTPHostKey {host_key_path}\n"
        f"SFTPAuthorizedUserKeys file:{workdir / 'authorized_keys'}\n"
        "SFTPAuthMethods publickey\n"
        "SFTPCompression off\n"
        "<Directory />\n  AllowOverwrite on\n</Directory>\n"
    )
    proc = subprocess.Popen([PROFTPD, "-n", "-q", "-c", str(config)],
                            stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "proftpd.stderr", "wb"))  # noqa: SIM115
    _wait_listening(proc, port, workdir / "proftpd.stderr", "proftpd")

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return MatrixServer(kind="proftpd", host="127.0.0.1", port=port, user=user,
                        host_key_line=key_line(host_key), client_key_path=client_key_path,
                        root=files, remote_dir=str(files), stop_fn=stop)


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start listening within 10 s")


# -- an S3-backed gateway (AWS Transfer Family-like) -----------------------------------------

APPEND_REFUSED = "append/resume of an existing object is not supported"
MAX_SESSIONS = 10
_sessions: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class S3GatewaySFTPServer(asyncssh.SFTPServer):
    """SFTP only, objects written once, in order: like a gateway in front of S3.

    - opening an existing file for writing without truncating it (or with append) is refused;
    - each write must start where the previous one on that handle ended;
    - ``posix-rename`` and ``setstat`` are refused; ``rename`` onto an existing name fails;
    - more than :data:`MAX_SESSIONS` SFTP sessions on one connection are refused.
    """

    def __init__(self, chan: asyncssh.SSHServerChannel, chroot: bytes | None = None) -> None:
        conn = chan.get_connection()
        count = _sessions.get(conn, 0) + 1
        self._conn = conn
        self._counted = count <= MAX_SESSIONS
        if self._counted:
            _sessions[conn] = count
        super().__init__(chan, chroot=chroot)
        self._ends: dict[int, int] = {}
        if not self._counted:
            chan.close()

    def exit(self) -> None:
        if self._counted:
            _sessions[self._conn] = max(0, _sessions.get(self._conn, 1) - 1)
            self._counted = False
        super().exit()

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        writing = pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND)
        if writing and os.path.exists(self.map_path(path)) and (
            pflags & asyncssh.FXF_APPEND or not pflags & asyncssh.FXF_TRUNC
        ):
            raise asyncssh.SFTPOpUnsupported(APPEND_REFUSED)
        handle = super().open(path, pflags, attrs)
        if writing:
            self._ends[id(handle)] = 0
        return handle

    def write(self, file_obj: object, offset: int, data: bytes) -> object:
        end = self._ends.get(id(file_obj))
        if end is not None:
            if offset != end:
                raise asyncssh.SFTPFailure("writes must be sequential")
            self._ends[id(file_obj)] = end + len(data)
        return super().write(file_obj, offset, data)

    def close(self, file_obj: object) -> object:
        self._ends.pop(id(file_obj), None)
        return super().close(file_obj)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("posix-rename is not supported")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if os.path.lexists(self.map_path(newpath)):
            raise asyncssh.SFTPFailure("target exists")
        super().rename(oldpath, newpath)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("SETSTAT is not supported")

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("SETSTAT is not supported")


async def start_s3gateway(workdir: Path, client_key: asyncssh.SSHKey,
                          host_key: asyncssh.SSHKey) -> tuple[MatrixServer, RunningServer]:
    files = workdir / "bucket"
    files.mkdir(parents=True, exist_ok=True)
    key_path = write_private_key(client_key, workdir / "id_client_s3")
    running = await start_sftp_server(files, host_key=host_key, authorized_keys=[client_key],
                                      allow_exec=False, sftp_factory=S3GatewaySFTPServer)
    server = MatrixServer(kind="s3gateway", host=running.host, port=running.port,
                          user="tester", host_key_line=key_line(host_key),
                          client_key_path=key_path, root=files, remote_dir="/",
                          stop_fn=running.close)
    return server, running


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is missing: .ci/run installs it")
    return path
