"""Shared fixtures: an isolated $FERRY_HOME, keys, and real SSH servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest

from backend.demo.server import start_sftp_server
from backend.log import reset_logging
from tests import ast_guard
from tests.agent_helpers import agent_home, slow_site  # noqa: F401 - fixtures
from tests.matrix import (
    KINDS,
    MatrixServer,
    start_openssh_kind,
    start_proftpd,
    start_s3gateway,
)
from tests.scaleout_parts import pg_cluster, pg_url, s3_url, seaweed  # noqa: F401 - fixtures
from tests.servers import InProcessServer, SshdServer, start_sshd, write_private_key
from tests.share_helpers import svc  # noqa: F401 - fixture

ast_guard.install()  # lets pytest rewrite asserts on CPython 3.11.7: see tests/ast_guard.py


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A test that ran the CLI in this process configured Ferry's logging for good (a file in
    its own FERRY_HOME, no propagation): undo that, so the next test's caplog sees records."""
    yield
    reset_logging()


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs transfers in-process (FERRY_NO_AGENT=1), also in the ``ferry``
    subprocesses it starts; the agent tests (tests/test_agent_*.py) unset it."""
    monkeypatch.setenv("FERRY_NO_AGENT", "1")


@pytest.fixture
def ferry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private FERRY_HOME for one test; prompts are disabled as in CI."""
    home = tmp_path / "ferry-home"
    monkeypatch.setenv("FERRY_HOME", str(home))
    monkeypatch.setenv("FERRY_NONINTERACTIVE", "1")
    monkeypatch.setenv("FERRY_NO_AGENT", "1")  # in-process transfers (tests/test_agent_*.py)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture(scope="session")
def host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture(scope="session")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def sftp_server(
    tmp_path: Path, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey
) -> AsyncIterator[InProcessServer]:
    """asyncssh's SFTP server in this process, rooted at ``tmp_path/remote``."""
    key_path = write_private_key(client_key, tmp_path / "id_client")
    server = await start_sftp_server(
        tmp_path / "remote",
        host_key=host_key,
        authorized_keys=[client_key],
        passwords={"pwuser": "correct horse battery staple"},
    )
    try:
        yield InProcessServer(server=server, client_key_path=key_path)
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def sshd(tmp_path: Path, client_key: asyncssh.SSHKey) -> Iterator[SshdServer]:
    """OpenSSH's sshd on a free loopback port with a throwaway host key (fails if missing)."""
    server = start_sshd(tmp_path / "sshd", client_key)
    try:
        yield server
    finally:
        server.stop()


async def _matrix(kind: str, tmp_path: Path, client_key: asyncssh.SSHKey,
                  host_key: asyncssh.SSHKey) -> AsyncIterator[MatrixServer]:
    if kind == "s3gateway":
        server, running = await start_s3gateway(tmp_path / kind, client_key, host_key)
        try:
            yield server
        finally:
            running.close()
            await running.wait_closed()
        return
    if kind == "proftpd":
        server = start_proftpd(tmp_path / kind, client_key)
    else:
        server = start_openssh_kind(kind, tmp_path / kind, client_key)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=KINDS)
async def matrix_server(request: pytest.FixtureRequest, tmp_path: Path,
                        client_key: asyncssh.SSHKey,
                        host_key: asyncssh.SSHKey) -> AsyncIterator[MatrixServer]:
    """Each server of the provider matrix in turn (tests/matrix.py)."""
    async for server in _matrix(request.param, tmp_path, client_key, host_key):
        yield server


@pytest.fixture
async def server_of_kind(tmp_path: Path, client_key: asyncssh.SSHKey,
                         host_key: asyncssh.SSHKey):
    """``async with server_of_kind("proftpd") as s:`` — one matrix server by kind."""
    import contextlib

    @contextlib.asynccontextmanager
    async def start(kind: str) -> AsyncIterator[MatrixServer]:
        async for server in _matrix(kind, tmp_path, client_key, host_key):
            yield server

    return start
