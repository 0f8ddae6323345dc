"""Real SSH servers for tests: asyncssh's SFTP server in-process, and OpenSSH's sshd.

Both listen on 127.0.0.1 only. ``SshdServer`` runs the machine's ``/usr/sbin/sshd`` with a
throwaway host key and user key; when sshd is missing the fixture fails (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend.demo.server import RunningServer
from backend.hostkeys import key_line
from backend.sites.model import Site, default_user

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ["/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private_key(key: asyncssh.SSHKey, path: Path) -> Path:
    path.write_bytes(key.export_private_key("openssh"))
    os.chmod(path, 0o600)
    return path


def site_for(server: InProcessServer | SshdServer, name: str, pinned: bool,
             changes: dict[str, object]) -> Site:
    """A validated key-auth Site for ``server``, its host key pinned unless ``pinned=False``."""
    site = Site(
        name=name,
        host=server.host,
        port=server.port,
        user=server.user,
        auth="key",
        key_file=str(server.client_key_path),
        host_keys=[server.host_key_line] if pinned else [],
    )
    for key, value in changes.items():
        setattr(site, key, value)
    return site.validate()


@dataclass
class InProcessServer:
    """An in-process asyncssh SFTP server and the client key that may log in to it."""

    server: RunningServer
    client_key_path: Path
    user: str = "tester"

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def root(self) -> Path:
        return self.server.root

    @property
    def host_key_line(self) -> str:
        return key_line(self.server.host_key)

    def site(self, name: str = "local", *, pinned: bool = True, **changes: object) -> Site:
        return site_for(self, name, pinned, changes)


@dataclass
class SshdServer:
    """A running OpenSSH sshd on 127.0.0.1 serving the real file system."""

    port: int
    workdir: Path
    host_key_path: Path
    client_key_path: Path
    proc: subprocess.Popen = field(repr=False)
    user: str = field(default_factory=default_user)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def host_key_line(self) -> str:
        return key_line(asyncssh.read_private_key(self.host_key_path))

    def site(self, name: str = "real", *, pinned: bool = True, **changes: object) -> Site:
        return site_for(self, name, pinned, changes)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(
    workdir: Path,
    client_key: asyncssh.SSHKey,
    *,
    host_key: asyncssh.SSHKey | None = None,
    port: int | None = None,
    extra_config: str = "",
    sftp_args: str = "",
    subsystem: str | None = None,
) -> SshdServer:
    """Start OpenSSH's sshd on a free loopback port; fail loudly if it is not installed.

    ``sftp_args`` go to ``sftp-server`` (e.g. ``-P rename,posix-rename`` denies those
    requests, ``-R`` serves read-only); ``subsystem`` replaces the sftp-server program (e.g.
    ``internal-sftp``); ``extra_config`` is appended to sshd_config.
    """
    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} is missing: install openssh-server (.ci/run does)")
    sftp_server = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), None)
    if sftp_server is None:
        raise RuntimeError("OpenSSH sftp-server is missing: install openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    host_key_path = write_private_key(host_key, workdir / "ssh_host_ed25519_key")
    client_key_path = write_private_key(client_key, workdir / "id_client")
    (workdir / "authorized_keys").write_bytes(client_key.export_public_key("openssh"))
    os.chmod(workdir / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = port or free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key_path}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\n"
        "StrictModes no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        f"Subsystem sftp {subsystem or sftp_server} {sftp_args}\n"
        "LogLevel ERROR\n" + extra_config
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "sshd.log", "wb"),  # noqa: SIM115 - lives as long as sshd
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(workdir / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start listening within 10 s")
    return SshdServer(
        port=port,
        workdir=workdir,
        host_key_path=host_key_path,
        client_key_path=client_key_path,
        proc=proc,
    )


def which_or_fail(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is missing: .ci/run installs it")
    return path
