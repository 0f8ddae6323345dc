"""Talking to the agent: connect (starting it on first need, as tmux starts its server), call,
receive events, stop it (docs/agent.md).

``client = await connect(start=True)`` returns a connected :class:`AgentClient` after the
hello exchange; ``await client.call("submit", spec=..., adopt=True)`` returns the reply's
result or raises the FerryError the agent raised (same class, same exit code);
``client.on_event(callback)`` receives ``(name, data)`` for every event after a
``subscribe``. A missing agent is started with :func:`spawn`: ``python -m backend.agent run``
in a new session (``setsid``: no controlling terminal, so the death of the terminal or a
SIGHUP to its process group does not reach it), standard streams to ``logs/agent.log``, and
``FERRY_VAULT_PASSPHRASE_FILE`` removed from its environment (it starts locked; clients unlock
it over the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backend
from backend.agent import location, protocol
from backend.errors import AgentError
from backend.session import PASSPHRASE_ENV
from backend.tasks import cancel_and_wait

NO_AGENT_ENV = "FERRY_NO_AGENT"
START_TIMEOUT = 15.0

EventCallback = Callable[[str, dict[str, Any]], None]


def disabled() -> bool:
    """``FERRY_NO_AGENT=1``: everything runs in-process (the test suite's default)."""
    return os.environ.get(NO_AGENT_ENV, "") not in ("", "0")


class NotRunning(AgentError):
    """No agent listens on the socket (none started, or it crashed)."""


class StartFailed(AgentError):
    """An agent was needed and none could be started (a client may then run in-process)."""


class AgentClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 hello: dict[str, Any]) -> None:
        self.reader = reader
        self.writer = writer
        self.hello = hello
        self.pid = int(hello.get("pid") or 0)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._callbacks: list[EventCallback] = []
        self.closed = asyncio.Event()
        self.lost: AgentError | None = None
        self._reading = asyncio.ensure_future(self._read_loop())

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    async def call(self, method: str, **params: Any) -> Any:
        if self.lost is not None:
            raise self.lost
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self.writer.write(protocol.encode({"type": "request", "id": ident, "method": method,
                                           "params": params}))
        try:
            await self.writer.drain()
            return await future
        finally:
            self._pending.pop(ident, None)

    def send_nowait(self, method: str, **params: Any) -> None:
        """A request whose reply nobody waits for (an answer to an attention item)."""
        ident = next(self._ids)
        self.writer.write(protocol.encode({"type": "request", "id": ident, "method": method,
                                           "params": params}))

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await protocol.read_message(self.reader)
                if message is None:
                    break
                kind = message.get("type")
                if kind == "reply":
                    msg_id = message.get("id")
                    future = self._pending.get(msg_id) if isinstance(msg_id, int) else None
                    if future is None or future.done():
                        continue
                    if message.get("error"):
                        future.set_exception(protocol.error_from_json(message["error"]))
                    else:
                        future.set_result(message.get("result"))
                elif kind == "event":
                    for callback in list(self._callbacks):
                        callback(str(message.get("event")), message.get("data") or {})
        except AgentError as exc:
            self.lost = exc
        finally:
            if self.lost is None:
                self.lost = AgentError(
                    f"the Ferry agent (pid {self.pid}) went away",
                    hint=f"its log: {location.log_path()}; unfinished jobs resume when an "
                         "agent starts again (ferry agent start)")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self.lost)
            self.closed.set()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        await cancel_and_wait(self._reading)


async def _open(path: Path, client: str, version: int) -> AgentClient:
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=protocol.MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning("no Ferry agent is running", hint="ferry agent start") from None
    except PermissionError:
        raise AgentError(f"cannot reach the agent socket {path}: permission denied",
                         hint="the socket belongs to another user; set FERRY_HOME to yours"
                         ) from None
    except OSError as exc:
        raise AgentError(f"cannot reach the agent socket {path}: {exc.strerror}") from None
    writer.write(protocol.encode({"type": "hello", "version": version, "client": client,
                                  "pid": os.getpid()}))
    try:
        hello = await asyncio.wait_for(protocol.read_message(reader), 10)
    except TimeoutError:
        writer.close()
        raise AgentError("the Ferry agent did not answer within 10 s",
                         hint=f"see {location.log_path()}") from None
    if hello is None:
        writer.close()
        raise AgentError("the Ferry agent closed the connection at once",
                         hint=f"see {location.log_path()}")
    if hello.get("type") == "error":
        writer.close()
        raise protocol.error_from_json(hello.get("error") or {})
    if hello.get("type") != "hello" or hello.get("version") != protocol.VERSION:
        writer.close()
        raise protocol.mismatch_error(hello.get("version"))
    return AgentClient(reader, writer, hello)


async def connect(*, start: bool = False, client: str = "cli",
                  version: int = protocol.VERSION) -> AgentClient:
    """A connected client; with ``start``, an agent is started first when none runs."""
    path = location.socket_path()
    try:
        return await _open(path, client, version)
    except NotRunning:
        if not start:
            raise
    try:
        proc = spawn()
    except OSError as exc:
        raise StartFailed(f"cannot start the Ferry agent: {exc.strerror}") from None
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return await _open(path, client, version)
        except NotRunning:
            if proc.poll() is not None:
                # another client's agent may have won the race for the lock: try it
                with contextlib.suppress(NotRunning):
                    return await _open(path, client, version)
                raise StartFailed(f"the Ferry agent did not start: {last_log_line()}",
                                  hint=f"see {location.log_path()}") from None
            if time.monotonic() > deadline:
                raise StartFailed("the Ferry agent did not start within "
                                 f"{START_TIMEOUT:.0f} s", hint=f"see {location.log_path()}"
                                 ) from None
            await asyncio.sleep(0.05)


def agent_env() -> dict[str, str]:
    """The started agent's environment: this one's, without the passphrase file and with this
    Ferry importable from any folder (the agent runs in ``/``)."""
    env = dict(os.environ)
    env.pop(PASSPHRASE_ENV, None)
    env.pop(NO_AGENT_ENV, None)
    root = str(Path(backend.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def spawn(extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m backend.agent run`` detached from this terminal."""
    log_file = location.log_path()
    with open(log_file, "ab") as out:
        os.chmod(log_file, 0o600)
        return subprocess.Popen(
            [sys.executable, "-m", "backend.agent", "run", *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
            env=agent_env(), start_new_session=True, close_fds=True)


def last_log_line() -> str:
    try:
        lines = location.log_path().read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


async def stop(timeout: float = 60.0) -> int | None:
    """Ask the running agent to stop and wait until it has; its pid, or None if none ran."""
    try:
        client = await connect()
    except NotRunning:
        return None
    try:
        result = await client.call("stop")
        await asyncio.wait_for(client.closed.wait(), timeout)
    finally:
        await client.close()
    pid = int(result.get("pid") or client.pid)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return pid


def _alive(pid: int) -> bool:
    from backend.fsutil import pid_alive

    return pid_alive(pid)
