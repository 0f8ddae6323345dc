"""The agent process: a Unix socket server that owns the transfer engine (docs/agent.md).

:func:`run_agent` is what ``ferry agent run`` (systemd) and ``python -m backend.agent run``
(started in the background by a client: backend/agent/client.py) execute. It

* takes ``agent.lock`` (one agent per user and ``FERRY_HOME``), removes a stale socket a
  crashed agent left, listens on a 0600 socket in a 0700 folder (backend/agent/location.py),
  and refuses any peer whose uid (``SO_PEERCRED``) is not its own;
* builds its engine through the one wiring (backend/session.py) with ``run_all_jobs``: every
  unfinished job in the journal nobody else runs is resumed here, including the jobs of a
  ``ferry get`` whose terminal died and of an agent that was killed;
* starts with the vault locked; a client unlocks it (the passphrase travels over the socket,
  never to disk or argv); it locks again after ``relock_after`` seconds without use;
* turns every question the engine's connections ask (unknown host key, vault passphrase, a
  password the vault does not hold) into a "needs attention" item the job waits on, offered to
  every attached client that can ask a person, answered by the first that does;
* runs the case watchers clients asked for (backend/agent/watchers.py) and, if asked, the share
  service (backend/agent/sharehost.py), both saved so the next agent runs them too;
* streams events to subscribed clients through bounded per-client queues: progress is
  coalesced to the newest figures per job at most ``progress_hz`` times a second, so a slow
  or stuck client costs the engine nothing (a client whose queue overflows is disconnected);
* ignores SIGHUP and stops on SIGTERM / SIGINT / a ``stop`` request: running jobs go back to
  ``queued`` with their offsets saved, and the next agent resumes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import fcntl
import itertools
import logging
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend import __version__, paths
from backend.agent import location, protocol
from backend.agent.sharehost import ShareHost
from backend.agent.watchers import Watchers, WatchSpec
from backend.errors import AgentError, CancelledByUser, ConfigError, FerryError, UsageError
from backend.hostkeys import PresentedKey, TrustDecision
from backend.names import display_name
from backend.relay import next_legs
from backend.session import Session
from backend.shares.launch import ServeSpec
from backend.sites.model import Site
from backend.transfers import JobSpec, TransferEngine, TransferEvent, moves
from backend.transfers.model import FINISHED_STATES, verified_counts
from backend.vault import Vault

log = logging.getLogger("ferry.agent")

DEFAULT_RELOCK = 3600.0  # seconds without use before the vault locks again
MAX_QUEUE = 10_000  # messages waiting for one client before it is dropped as stuck
DEFAULT_PROGRESS_HZ = 4.0

_current_site: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ferry_agent_site", default=None)


class Attention:
    """A question a job waits on until a client answers it."""

    def __init__(self, ident: int, kind: str, site: str | None, detail: dict[str, Any]) -> None:
        self.id = ident
        self.kind = kind  # "host_key" | "vault" | "secret"
        self.site = site
        self.detail = detail
        self.since = time.time()
        self.waiters = 0
        self.future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "site": self.site, "since": self.since,
                **self.detail}

    def describe(self) -> str:
        if self.kind == "host_key":
            return (f"unknown host key of {self.site}: {self.detail.get('key_type')} "
                    f"{self.detail.get('fingerprint')}")
        if self.kind == "vault":
            return "the vault is locked: its passphrase is needed"
        return f"a {self.detail.get('what')} for site {self.site}"


class AgentPrompter:
    """backend.session.Prompter for the agent: each question becomes an :class:`Attention`."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def host_key(self, site_name: str, key: PresentedKey) -> TrustDecision | None:
        answer = await self.agent.ask("host_key", site_name, {
            "key_type": key.key_type, "fingerprint": key.fingerprint})
        return TrustDecision(answer) if answer else None

    async def host_key_changed(self, site_name: str, error: Any) -> None:
        self.agent.notify(str(error), severity="error", site=site_name)

    async def vault_passphrase(self, path: Path, *, create: bool) -> str | None:
        if create:  # a new vault needs a person typing twice: in a terminal, not here
            raise UsageError("the agent cannot create the vault",
                             hint="create it in a terminal first: ferry vault set NAME")
        answer = await self.agent.ask("vault", _current_site.get(), {"path": str(path)})
        return str(answer) if answer else None

    async def secret(self, site: Site, what: str) -> str | None:
        answer = await self.agent.ask("secret", site.name, {"what": what})
        return str(answer) if answer else None


class AgentSession(Session):
    """The one wiring (backend/session.py), plus: unlock from a client, relock when idle."""

    def __init__(self, prompter: AgentPrompter, relock_after: float) -> None:
        super().__init__(prompter)
        self.relock_after = relock_after
        self.last_used = 0.0

    async def vault(self, create: bool = False) -> Vault | None:
        vault = await super().vault(create)
        if vault is not None:
            self.last_used = time.monotonic()
        return vault

    async def credentials(self, site: Site) -> Any:
        token = _current_site.set(site.name)
        try:
            return await super().credentials(site)
        finally:
            _current_site.reset(token)

    async def key_for(self, site: Site) -> bytes:
        token = _current_site.set(site.name)
        try:
            return await super().key_for(site)
        finally:
            _current_site.reset(token)

    def unlock(self, passphrase: str) -> None:
        path = paths.vault_file()
        if not Vault.exists(path):
            raise ConfigError("there is no vault to unlock", hint="ferry vault set NAME creates it")
        self._vault = Vault.open(path, passphrase)
        self.last_used = time.monotonic()

    def lock(self) -> bool:
        was, self._vault = self._vault is not None, None
        return was

    def relock_if_idle(self) -> bool:
        if self._vault is None or self.relock_after <= 0:
            return False
        if time.monotonic() - self.last_used < self.relock_after:
            return False
        return self.lock()

    def vault_state(self) -> str:
        if self._vault is not None:
            return "unlocked"
        return "locked" if Vault.exists(paths.vault_file()) else "none"


class Client:
    """One connected client: its bounded outgoing queue and its subscription."""

    def __init__(self, agent: Agent, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, pid: int) -> None:
        self.agent = agent
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.name = "?"
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.progress: dict[int, dict[str, Any]] = {}
        self.last_progress: dict[int, float] = {}
        self.wake = asyncio.Event()
        self.subscribed = False
        self.jobs: set[int] | None = None
        self.interval = 1 / DEFAULT_PROGRESS_HZ
        self.prompts = False
        self.dropped = False  # stuck or gone: nothing more is sent
        self.closing = False  # the agent stops: what is queued is sent, then the end
        self.tasks: set[asyncio.Task[None]] = set()

    def push(self, message: dict[str, Any]) -> None:
        if self.dropped:
            return
        job = _job_of(message)
        if job is not None and job in self.progress:  # keep progress before what follows it
            self.queue.append(self.progress.pop(job))
        if len(self.queue) >= MAX_QUEUE:
            log.warning("client %s (pid %s) does not read its events: disconnected",
                        self.name, self.pid)
            self.dropped = True
        else:
            self.queue.append(message)
        self.wake.set()

    def push_progress(self, job_id: int, message: dict[str, Any]) -> None:
        self.progress[job_id] = message  # only the newest figures are ever sent
        self.wake.set()

    def wants(self, job_id: int) -> bool:
        return self.subscribed and (self.jobs is None or job_id in self.jobs)

    async def write_loop(self) -> None:
        try:
            while not self.dropped:
                timeout = None
                if self.progress:
                    now = time.monotonic()
                    due = min(self.last_progress.get(j, 0) + self.interval for j in self.progress)
                    timeout = max(0.0, due - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
                self.wake.clear()
                while self.queue:
                    self.writer.write(protocol.encode(self.queue.popleft()))
                now = time.monotonic()
                for job_id in list(self.progress):
                    if now - self.last_progress.get(job_id, 0) >= self.interval:
                        self.writer.write(protocol.encode(self.progress.pop(job_id)))
                        self.last_progress[job_id] = now
                await self.writer.drain()  # a slow reader only ever stalls this task
                if self.closing:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()


def _job_of(message: dict[str, Any]) -> int | None:
    if message.get("type") != "event":
        return None
    job = message.get("data", {}).get("job_id")
    return job if isinstance(job, int) else None


def _peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid


class Agent:
    """The agent: its session and engine, its clients, its open questions."""

    def __init__(self, *, relock_after: float = DEFAULT_RELOCK) -> None:
        self.session = AgentSession(AgentPrompter(self), relock_after)
        self.engine: TransferEngine | None = None
        self.watchers: Watchers | None = None
        self.shares = ShareHost()
        self.clients: set[Client] = set()
        self.attention: dict[int, Attention] = {}
        self._ids = itertools.count(1)
        self.started = time.time()
        self.stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._lock_fd: int | None = None
        self._server: asyncio.AbstractServer | None = None

    # -- questions --------------------------------------------------------------------------

    async def ask(self, kind: str, site: str | None, detail: dict[str, Any]) -> Any:
        """Wait until a client answers (the job waits with it); one question per kind and site
        at a time (two jobs on one site share the answer)."""
        item = next((a for a in self.attention.values()
                     if a.kind == kind and a.site == site and not a.future.done()), None)
        if item is None:
            item = Attention(next(self._ids), kind, site, detail)
            self.attention[item.id] = item
            log.info("needs attention #%s: %s", item.id, display_name(item.describe()))
            self._broadcast("attention", item.to_json(), prompts_only=True)
            asked = item

            def answered(_future: object) -> None:
                self._attention_done(asked)

            item.future.add_done_callback(answered)
        item.waiters += 1
        try:
            answer = await asyncio.shield(item.future)
        finally:
            item.waiters -= 1
            if item.waiters == 0 and not item.future.done():  # every job waiting went away
                item.future.cancel()
        if answer.get("error"):
            raise protocol.error_from_json(answer["error"])
        return answer.get("value")

    def _attention_done(self, item: Attention) -> None:
        if self.attention.get(item.id) is not item:
            return
        self.attention.pop(item.id, None)
        self._broadcast("attention-done", {"id": item.id}, prompts_only=True)

    def answer(self, ident: int, value: Any, error: dict[str, Any] | None) -> bool:
        item = self.attention.get(ident)
        if item is None or item.future.done():
            return False  # answered by another client already
        item.future.set_result({"value": value, "error": error})
        return True

    def notify(self, text: str, *, severity: str = "information", **extra: Any) -> None:
        self._broadcast("notification", {"text": text, "severity": severity, **extra})

    # -- events -----------------------------------------------------------------------------

    def _broadcast(self, name: str, data: dict[str, Any], *, prompts_only: bool = False) -> None:
        message = {"type": "event", "event": name, "data": data}
        for client in list(self.clients):
            if client.subscribed and (client.prompts or not prompts_only):
                client.push(message)

    def _on_engine_event(self, event: TransferEvent) -> None:
        message = {"type": "event", "event": event.kind, "data": event.to_json()}
        for client in list(self.clients):
            if not client.wants(event.job_id):
                continue
            if event.kind == "progress":
                client.push_progress(event.job_id, message)
            else:
                client.push(message)
        if event.kind == "job" and event.state in FINISHED_STATES:
            self._finished_notice(event)

    def _finished_notice(self, event: TransferEvent) -> None:
        assert self.engine is not None
        try:
            label = self.engine.job(event.job_id).label
        except FerryError:
            label = f"transfer {event.job_id}"
        notes = "".join(f"\n{n}" for n in self.engine.notes(event.job_id))
        text = f"{label}: {event.state}" + (f": {event.error}" if event.error else "") + notes
        self.notify(text, severity="error" if event.state == "failed" else "information",
                    job_id=event.job_id, state=event.state)

    # -- requests ---------------------------------------------------------------------------

    def _jobs(self) -> list[dict[str, Any]]:
        assert self.engine is not None
        waiting = list(self.attention.values())
        out = []
        for status in self.engine.jobs():
            data = status.to_json()
            item = next((a for a in waiting if status.state == "running"
                         and (a.site == status.site or a.site is None)), None)
            data["attention"] = item.describe() if item is not None else None
            out.append(data)
        return out

    def report(self, job_id: int) -> dict[str, Any]:
        """What a client needs to print the summary ``ferry get`` prints in-process."""
        assert self.engine is not None
        engine = self.engine
        status = engine.job(job_id)
        files = engine.files(job_id)
        error = engine.job_error(job_id)
        moved = moves.outcome_of(engine, job_id)
        return {
            "status": status.to_json(),
            "verified": verified_counts([f.verify for f in files if f.state == "done"]),
            "failed": [{"source": f.source, "error": f.error} for f in files
                       if f.state == "failed"],
            "error": protocol.error_to_json(error) if error is not None else None,
            "notes": engine.notes(job_id),
            "move": moved.to_json() if moved is not None else None,
            "next": next_legs(engine.journal, [job_id]),
        }

    def status(self) -> dict[str, Any]:
        assert self.engine is not None
        counts: dict[str, int] = {}
        for job in self.engine.jobs():
            counts[job.state] = counts.get(job.state, 0) + 1
        return {
            "pid": os.getpid(), "ferry": __version__, "protocol": protocol.VERSION,
            "uptime": time.time() - self.started, "socket": str(location.socket_path()),
            "log": str(location.log_path()), "vault": self.session.vault_state(),
            "relock_after": self.session.relock_after, "clients": len(self.clients),
            "jobs": counts, "attention": [a.to_json() | {"text": a.describe()}
                                          for a in self.attention.values()],
            "watchers": self.watchers.list() if self.watchers is not None else [],
            "share_service": self.shares.status(),
        }

    async def handle(self, client: Client, method: str, params: dict[str, Any]) -> Any:
        assert self.engine is not None
        engine = self.engine
        job = params.get("job")
        if method in ("pause", "resume", "cancel", "retry", "wait", "report", "files",
                      "move") and (
                not isinstance(job, int)):
            raise UsageError(f"{method} needs a job number")
        job_id = job if isinstance(job, int) else 0  # 0: not used by the other methods
        if method == "status":
            return self.status()
        if method == "jobs":
            return self._jobs()
        if method == "files":
            return [f.to_json() for f in engine.files(job_id)]
        if method == "submit":
            spec = JobSpec.from_json(params["spec"]).validate()
            job_id = await (engine.adopt(spec) if params.get("adopt") else engine.submit(spec))
            log.info("job %s queued by %s (pid %s): %s", job_id, client.name, client.pid,
                     spec.label)
            return {"job": job_id}
        if method in ("pause", "resume", "cancel", "retry"):
            engine.job(job_id)  # an unknown job: UsageError
            await getattr(engine, method)(job_id)
            return {"job": job_id, "state": engine.job(job_id).state, "notes": engine.notes(job_id)}
        if method == "move":  # the TUI queue's reordering
            engine.job(job_id)
            await engine.move(job_id, int(params.get("delta", 0)))
            return {"job": job_id, "state": engine.job(job_id).state}
        if method == "forget":  # the TUI queue's C / x on a finished job
            jobs = params.get("jobs")
            ids = None if jobs is None else [int(j) for j in jobs]
            return {"forgotten": await engine.forget_finished(ids)}
        if method == "watch":  # a case watcher (backend/agent/watchers.py)
            assert self.watchers is not None
            state = self.watchers.add(WatchSpec.from_json(params))
            log.info("case watcher for %s started by %s (pid %s)", state.spec.site,
                     client.name, client.pid)
            return state.to_json()
        if method == "serve":  # the share service (backend/agent/sharehost.py)
            if params.get("stop"):
                return {"stopped": await self.shares.stop()}
            status = await self.shares.start(ServeSpec.from_json(params.get("spec") or {}))
            log.info("share service started by %s (pid %s)", client.name, client.pid)
            return status
        if method == "unwatch":
            assert self.watchers is not None
            return {"stopped": self.watchers.remove(str(params["site"]))}
        if method == "wait":
            await engine.wait(job_id)
            return self.report(job_id)
        if method == "report":
            return self.report(job_id)
        if method == "subscribe":
            client.subscribed = True
            jobs = params.get("jobs")
            client.jobs = None if jobs is None else {int(j) for j in jobs}
            hz = float(params.get("progress_hz") or DEFAULT_PROGRESS_HZ)
            client.interval = 1 / min(max(hz, 0.2), 20.0)
            client.prompts = bool(params.get("prompts"))
            if client.prompts:
                for item in list(self.attention.values()):
                    client.push({"type": "event", "event": "attention", "data": item.to_json()})
            return {"jobs": self._jobs()}
        if method == "watch":  # add jobs to an existing subscription
            if client.jobs is not None:
                client.jobs.update(int(j) for j in params.get("jobs", []))
            return {"ok": True}
        if method == "answer":
            ok = self.answer(int(params.get("attention", 0)), params.get("value"),
                             params.get("error"))
            return {"ok": ok}
        if method == "unlock":
            passphrase = params.get("passphrase")
            if not isinstance(passphrase, str) or not passphrase:
                raise UsageError("unlock needs the passphrase")
            self.session.unlock(passphrase)
            log.info("vault unlocked by %s (pid %s)", client.name, client.pid)
            for item in list(self.attention.values()):  # jobs waiting for it go on
                if item.kind == "vault":
                    self.answer(item.id, passphrase, None)
            self._broadcast("vault", {"state": "unlocked"})
            return {"vault": "unlocked"}
        if method == "lock":
            self.session.lock()
            log.info("vault locked by %s (pid %s)", client.name, client.pid)
            self._broadcast("vault", {"state": self.session.vault_state()})
            return {"vault": self.session.vault_state()}
        if method == "stop":
            log.info("stop requested by %s (pid %s)", client.name, client.pid)
            assert self.stopping is not None
            asyncio.get_running_loop().call_soon(self.stopping.set)
            return {"stopping": True, "pid": os.getpid()}
        raise UsageError(f"the agent has no request {method!r}")

    # -- connections ------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid = _peer(sock)
        except OSError:
            writer.close()
            return
        if uid != os.getuid():
            log.warning("refused a client of uid %s (pid %s): this agent serves uid %s only",
                        uid, pid, os.getuid())
            writer.write(protocol.encode({"type": "error", "error": protocol.error_to_json(
                AgentError(f"this Ferry agent serves uid {os.getuid()} only, not uid {uid}",
                           hint="each user runs their own agent"))}))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()
            return
        client = Client(self, reader, writer, pid)
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
            me.add_done_callback(self._handlers.discard)
        try:
            hello = await asyncio.wait_for(protocol.read_message(reader), 10)
        except (TimeoutError, AgentError):
            writer.close()
            return
        if hello is None or hello.get("type") != "hello":
            writer.close()
            return
        if hello.get("version") != protocol.VERSION:
            err = AgentError(
                f"this Ferry agent speaks protocol version {protocol.VERSION}, the client "
                f"speaks {hello.get('version')}",
                hint="run the same Ferry version, or restart the agent: ferry agent stop")
            writer.write(protocol.encode({"type": "error", "version": protocol.VERSION,
                                          "error": protocol.error_to_json(err)}))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()
            return
        client.name = str(hello.get("client") or "client")[:40]
        writer.write(protocol.encode({"type": "hello", "version": protocol.VERSION,
                                      "pid": os.getpid(), "ferry": __version__}))
        self.clients.add(client)
        log.info("client %s attached (pid %s)", client.name, pid)
        writing = asyncio.ensure_future(client.write_loop())
        try:
            while not (client.dropped or client.closing):
                try:
                    message = await protocol.read_message(reader)
                except AgentError as exc:
                    log.warning("client %s (pid %s): %s", client.name, pid, exc)
                    break
                if message is None:
                    break
                if message.get("type") != "request":
                    continue
                task = asyncio.ensure_future(self._serve(client, message))
                client.tasks.add(task)
                task.add_done_callback(client.tasks.discard)
        finally:
            self.clients.discard(client)
            client.dropped = True
            client.wake.set()
            for task in list(client.tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await writing
            log.info("client %s detached (pid %s)", client.name, pid)

    async def _serve(self, client: Client, message: dict[str, Any]) -> None:
        ident = message.get("id")
        method = str(message.get("method"))
        params = message.get("params") or {}
        try:
            result = await self.handle(client, method, params if isinstance(params, dict) else {})
            reply = {"type": "reply", "id": ident, "result": result}
        except FerryError as exc:
            reply = {"type": "reply", "id": ident, "error": protocol.error_to_json(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"type": "reply", "id": ident, "error": protocol.error_to_json(
                UsageError(f"bad {method} request: {exc}"))}
        except Exception as exc:
            log.exception("request %s failed", method)
            reply = {"type": "reply", "id": ident, "error": protocol.error_to_json(exc)}
        client.push(reply)

    # -- lifecycle --------------------------------------------------------------------------

    def _take_lock(self) -> None:
        fd = os.open(location.lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AgentError(f"a Ferry agent already runs here (pid {location.read_pid()})",
                             hint="ferry agent status") from None
        self._lock_fd = fd

    def _clear_stale_socket(self, path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"{path} exists and is not a socket", hint="remove it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:  # nobody listens: a crashed agent's socket
            log.info("removing the stale socket %s", path)
            path.unlink()
            return
        finally:
            probe.close()
        raise AgentError("a Ferry agent already listens on " + str(path))

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        self.stopping = asyncio.Event()
        self._take_lock()
        path = location.socket_path()
        self._clear_stale_socket(path)
        old = os.umask(0o177)  # the socket is born 0600 (no window where it is wider)
        try:
            self._server = await asyncio.start_unix_server(self._on_client, path=str(path),
                                                           limit=protocol.MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        location.pid_path().write_text(f"{os.getpid()}\n")
        self.engine = self.session.engine(run_all_jobs=True)
        self.engine.subscribe(self._on_engine_event)
        await self.engine.start()
        self.watchers = Watchers(self.session, self.engine,
                                 lambda text, severity: self.notify(text, severity=severity))
        self.watchers.start_saved()
        await self.shares.start_saved()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP ignored"))
        relocker = asyncio.ensure_future(self._relock_loop())
        log.info("agent %s listening on %s (ferry %s, protocol %s)", os.getpid(), path,
                 __version__, protocol.VERSION)
        if ready is not None:
            ready()
        try:
            await self.stopping.wait()
        finally:
            relocker.cancel()
            await self._shutdown(path)

    async def _relock_loop(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.5, self.session.relock_after / 4)))
            if self.session.relock_if_idle():
                log.info("vault locked after %.0fs without use", self.session.relock_after)
                self._broadcast("vault", {"state": "locked"})

    async def _shutdown(self, path: Path) -> None:
        log.info("agent stopping")
        if self._server is not None:
            self._server.close()
        for item in list(self.attention.values()):
            if not item.future.done():
                item.future.set_result({"error": protocol.error_to_json(
                    CancelledByUser("the agent stopped before anyone answered"))})
        await self.shares.close()  # its options stay saved for the next agent
        if self.watchers is not None:
            await self.watchers.close()  # saved: the next agent starts them again
        if self.engine is not None:
            await self.engine.stop()  # running jobs: back to queued, offsets saved
        for client in list(self.clients):  # the replies queued are sent, then the end
            client.closing = True
            client.wake.set()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            location.pid_path().unlink()
        log.info("agent stopped")


def run_agent(*, relock_after: float = DEFAULT_RELOCK,
              ready: Callable[[], None] | None = None) -> int:
    """Run the agent in this process until it is stopped; the exit code."""
    agent = Agent(relock_after=relock_after)

    async def main() -> None:
        await agent.serve(ready)

    asyncio.run(main())
    return 0

