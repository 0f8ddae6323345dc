"""The agent's transfer engine as a client sees it: the TUI attached to the agent (docs/agent.md,
"The TUI").

:class:`AgentEngine` offers the calls of :class:`backend.transfers.TransferEngine` that a face
makes — ``submit``/``adopt``, ``pause``/``resume``/``cancel``/``retry``/``move``, ``wait``,
``forget_finished``, ``jobs``/``job``/``files``/``notes``/``job_error``, ``subscribe`` — but the
jobs run in the agent, so they outlive this process; :meth:`AgentEngine.stop` only detaches.
The TUI's widgets and the case and relay workflows (backend/cases/send.py, backend/relay.py)
use it exactly as they use an in-process engine.

* **Job list**: the agent's (with its live figures), read again after every job event before
  the event is passed on, so a subscriber that re-reads ``jobs()`` when told sees the change;
  file and progress events (which do not change the list) pass on at once, in order, and
  progress events update the figures in between. A finished job's report (notes, the
  error that failed it, a move's outcome) is fetched before its event is passed on.
* **Files** of a job are read from the journal the agent writes (backend/transfers/journal.py;
  shared safely between processes), as the in-process engine does.
* **Questions** the agent's jobs wait on (unknown host key, vault passphrase, a password the
  vault does not hold: "needs attention") are answered with this face's
  :class:`backend.session.Prompter` by :class:`Answerer` — the same one ``ferry get`` uses
  through the agent — one at a time.
* **A lost agent** (killed, crashed, stopped) is announced to :meth:`AgentEngine.on_notice`
  callbacks; the engine then connects again (starting a new agent, which resumes every
  unfinished job from the journal) and says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from backend.agent import client as agent_client
from backend.agent import protocol
from backend.errors import AgentError, FerryError, UsageError
from backend.hostkeys import PresentedKey
from backend.session import Prompter, passphrase_from_env
from backend.sites.store import SiteStore
from backend.tasks import cancel_and_wait
from backend.transfers.journal import Journal
from backend.transfers.model import (
    FINISHED_STATES,
    FileStatus,
    JobSpec,
    JobStatus,
    TransferEvent,
)
from backend.transfers.moves import MoveOutcome
from backend.transfers.subscribers import Subscribers

log = logging.getLogger("ferry.agent.remote")

RECONNECT_EVERY = 1.0  # seconds between attempts to reach (or start) an agent again
NoticeCallback = Callable[[str, str], None]  # (text, severity)


def status_of(data: dict[str, Any]) -> JobStatus:
    """A :class:`JobStatus` from the agent's JSON (``JobStatus.to_json``)."""
    known = {k: data[k] for k in JobStatus.__dataclass_fields__ if k in data and k != "spec"}
    return JobStatus(**known)


def event_of(data: dict[str, Any]) -> TransferEvent:
    """A :class:`TransferEvent` from the agent's JSON (``TransferEvent.to_json``)."""
    return TransferEvent(**{k: data[k] for k in TransferEvent.__dataclass_fields__ if k in data})


class Answerer:
    """Answers the agent's questions with a face's prompter (terminal or dialogs), exactly as
    that face answers them in-process; one question at a time."""

    def __init__(self, client: agent_client.AgentClient, prompter: Prompter,
                 sites: set[str] | None = None) -> None:
        self.client = client
        self.prompter = prompter
        self.sites = sites  # None: any question (the TUI; ``ferry queue watch`` on a terminal)
        self._one_at_a_time = asyncio.Lock()
        self.tasks: set[asyncio.Future[None]] = set()

    def wants(self, data: dict[str, Any]) -> bool:
        return self.sites is None or data.get("site") is None or data.get("site") in self.sites

    def offer(self, data: dict[str, Any]) -> None:
        """An ``attention`` event: answer it in the background when it is ours to answer."""
        if not self.wants(data):
            return
        task = asyncio.ensure_future(self.answer(data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def answer(self, data: dict[str, Any]) -> None:
        async with self._one_at_a_time:
            try:
                value, error = await self._ask(data), None
            except FerryError as exc:
                value, error = None, protocol.error_to_json(exc)
        if not self.client.closed.is_set():
            self.client.send_nowait("answer", attention=data["id"], value=value, error=error)

    async def _ask(self, data: dict[str, Any]) -> Any:
        kind, site = data.get("kind"), str(data.get("site") or "")
        if kind == "host_key":
            decision = await self.prompter.host_key(site, PresentedKey(
                key_type=str(data.get("key_type")), fingerprint=str(data.get("fingerprint")),
                line=""))
            return decision.value if decision is not None else None
        if kind == "vault":
            return passphrase_from_env() or await self.prompter.vault_passphrase(
                Path(str(data.get("path"))), create=False)
        if kind == "secret":
            try:
                site_obj: Any = SiteStore().get(site)
            except FerryError:
                site_obj = SimpleNamespace(name=site)
            return await self.prompter.secret(site_obj, str(data.get("what")))
        return None


class AgentEngine:
    """The agent's engine for one client (see the module docstring). All methods run on one
    asyncio loop; callbacks are called on it."""

    def __init__(self, prompter: Prompter | None = None, *, client_name: str = "tui",
                 progress_hz: float = 10.0, journal: Journal | None = None,
                 sites: set[str] | None = None) -> None:
        """``sites``: answer only the questions of jobs on these sites (a command's own;
        None: any, as the TUI does)."""
        self.prompter = prompter
        self.sites = sites
        self.client_name = client_name
        self.progress_hz = progress_hz
        self.journal = journal or Journal()
        # owns no job (every job is the agent's): backend/cases/send.py then waits, not runs
        self.me = f"client:{os.getpid()}:{secrets.token_hex(4)}"
        self.client: agent_client.AgentClient | None = None
        self.pid = 0
        self._statuses: dict[int, JobStatus] = {}  # in the agent's order (dicts keep it)
        self._reports: dict[int, dict[str, Any]] = {}
        self._subs = Subscribers()
        self._notices: list[NoticeCallback] = []
        self._pending: list[TransferEvent] = []
        self._refresher: asyncio.Future[None] | None = None
        self._watcher: asyncio.Future[None] | None = None
        self._answerer: Answerer | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, *, spawn: bool = True) -> None:
        """Attach to the agent (starting one first with ``spawn``, as ``ferry get`` does);
        raises :class:`AgentError` (``StartFailed`` when none could start)."""
        self._stopping = False
        await self._attach(spawn)

    async def _attach(self, spawn: bool) -> None:
        client = await agent_client.connect(start=spawn, client=self.client_name)
        try:
            self._answerer = (Answerer(client, self.prompter, self.sites) if self.prompter
                              else None)
            client.on_event(self._on_agent_event)
            snapshot = await client.call("subscribe", jobs=None, progress_hz=self.progress_hz,
                                         prompts=self._answerer is not None)
        except BaseException:
            await client.close()
            raise
        self.client, self.pid = client, client.pid
        self._set_jobs(snapshot["jobs"])
        self._watcher = asyncio.ensure_future(self._watch(client))

    async def stop(self) -> None:
        """Detach: every job goes on in the agent."""
        self._stopping = True
        client, self.client = self.client, None
        for task in (self._watcher, self._refresher):
            if task is not None and task is not asyncio.current_task():
                await cancel_and_wait(task)
        if self._answerer is not None:
            for task in list(self._answerer.tasks):
                await cancel_and_wait(task)
        if client is not None:
            await client.close()

    async def _watch(self, client: agent_client.AgentClient) -> None:
        """When the agent goes away: say so, then attach to a new one (which resumes every
        unfinished job from the journal)."""
        await client.closed.wait()
        if self._stopping:
            return
        lost = client.lost or AgentError("the Ferry agent went away")
        self.client = None
        self._notice(f"{lost.message}; reconnecting (its transfers resume from the journal)",
                     "error")
        while not self._stopping:
            await asyncio.sleep(RECONNECT_EVERY)
            try:
                await self._attach(spawn=True)
            except AgentError as exc:
                log.warning("reaching the agent again: %s", exc)
                continue
            self._notice(f"attached to the Ferry agent (pid {self.pid}): unfinished transfers "
                         "continue there", "information")
            self._dispatch_all([TransferEvent("job", j.id, j.state) for j in self.jobs()])
            return

    # -- what the agent runs ---------------------------------------------------------------
    def running(self) -> list[JobStatus]:
        """The jobs queued or running in the agent (they go on when this client quits)."""
        return [j for j in self.jobs() if j.state in ("queued", "running")]

    def jobs(self) -> list[JobStatus]:
        return list(self._statuses.values())

    def job(self, job_id: int) -> JobStatus:
        status = self._statuses.get(job_id)
        if status is None:
            raise UsageError(f"no transfer job {job_id}", hint="see 'ferry queue list'")
        return status

    def files(self, job_id: int) -> list[FileStatus]:
        return [r.status() for r in self.journal.files(job_id)]

    def notes(self, job_id: int) -> list[str]:
        return list(self._reports.get(job_id, {}).get("notes") or [])

    def job_error(self, job_id: int) -> FerryError | None:
        error = self._reports.get(job_id, {}).get("error")
        return protocol.error_from_json(error) if error else None

    def move_outcome(self, job_id: int) -> MoveOutcome | None:
        data = self._reports.get(job_id, {}).get("move")
        return MoveOutcome.from_json(data) if data else None

    def subscribe(self, callback: Callable[[TransferEvent], None]) -> Callable[[], None]:
        return self._subs.add(callback)

    def on_notice(self, callback: NoticeCallback) -> None:
        """``callback(text, severity)`` for what the agent says outside a job's events (a
        changed host key, the agent lost and found again)."""
        self._notices.append(callback)

    # -- control ---------------------------------------------------------------------------
    async def _call(self, method: str, **params: Any) -> Any:
        client = self.client
        if client is None:
            raise AgentError("not attached to the Ferry agent (it went away)",
                             hint="wait a moment: Ferry reconnects and starts a new agent")
        return await client.call(method, **params)

    async def submit(self, spec: JobSpec) -> int:
        result = await self._call("submit", spec=spec.validate().to_json(), adopt=False)
        return await self._known(int(result["job"]))

    async def adopt(self, spec: JobSpec) -> int:
        result = await self._call("submit", spec=spec.validate().to_json(), adopt=True)
        return await self._known(int(result["job"]))

    async def _known(self, job_id: int) -> int:
        if job_id not in self._statuses:  # its "queued" event may still be on its way
            self._set_jobs(await self._call("jobs"))
        return job_id

    async def pause(self, job_id: int) -> None:
        await self._control("pause", job_id)

    async def resume(self, job_id: int) -> None:
        await self._control("resume", job_id)

    async def cancel(self, job_id: int) -> None:
        await self._control("cancel", job_id)

    async def retry(self, job_id: int) -> None:
        self._reports.pop(job_id, None)
        await self._control("retry", job_id)

    async def move(self, job_id: int, delta: int) -> None:
        await self._control("move", job_id, delta=delta)

    async def _control(self, method: str, job_id: int, **params: Any) -> None:
        result = await self._call(method, job=job_id, **params)
        if result.get("notes"):
            self._reports.setdefault(job_id, {})["notes"] = list(result["notes"])
        self._set_jobs(await self._call("jobs"))

    async def unlock(self, passphrase: str) -> None:
        """Unlock the agent's vault (the passphrase travels over the socket only)."""
        await self._call("unlock", passphrase=passphrase)

    async def forget_finished(self, job_ids: Iterable[int] | None = None) -> list[int]:
        result = await self._call("forget", jobs=None if job_ids is None else list(job_ids))
        forgotten = [int(j) for j in result["forgotten"]]
        for job_id in forgotten:
            self._statuses.pop(job_id, None)
            self._reports.pop(job_id, None)
        return forgotten

    async def wait(self, job_id: int) -> JobStatus:
        """Until the job ends in the agent (by anyone's hand); its final status."""
        report = await self._call("wait", job=job_id)
        status = status_of(report["status"])
        self._reports[job_id] = report
        self._statuses[job_id] = status  # (a job new to this client goes last, as in the agent)
        return status

    # -- events ----------------------------------------------------------------------------
    def _set_jobs(self, jobs: list[dict[str, Any]]) -> None:
        self._statuses = {s.id: s for s in map(status_of, jobs)}

    def _on_agent_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "attention":
            if self._answerer is not None:
                self._answerer.offer(data)
        elif name == "progress":
            event = event_of(data)
            status = self._statuses.get(event.job_id)
            if status is not None and status.state not in FINISHED_STATES:
                self._statuses[event.job_id] = replace(
                    status, bytes_done=event.bytes_done,
                    bytes_total=event.bytes_total or status.bytes_total, speed=event.speed,
                    eta=event.eta, files_done=event.files_done,
                    files_total=event.files_total or status.files_total,
                    files_failed=event.files_failed)
            self._dispatch_all([event])
        elif name == "file" and not self._pending:
            self._dispatch_all([event_of(data)])  # the job list is unchanged: pass it on now
        elif name in ("job", "file"):  # (a file event waits behind a job event, in order)
            self._pending.append(event_of(data))
            if self._refresher is None or self._refresher.done():
                self._refresher = asyncio.ensure_future(self._refresh())
        elif name == "notification" and data.get("job_id") is None:
            self._notice(str(data.get("text") or ""), str(data.get("severity") or "information"))

    async def _refresh(self) -> None:
        """Read the job list (and finished jobs' reports) again, then pass the events on."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                if any(e.kind == "job" for e in batch):
                    self._set_jobs(await self._call("jobs"))
                for event in batch:
                    if event.kind == "job" and event.state in FINISHED_STATES:
                        self._reports[event.job_id] = await self._call("report",
                                                                       job=event.job_id)
            except FerryError as exc:  # the agent went away: _watch says so
                log.info("refreshing the job list: %s", exc)
            self._dispatch_all(batch)

    def _dispatch_all(self, events: list[TransferEvent]) -> None:
        for event in events:
            self._subs.emit(event)

    def _notice(self, text: str, severity: str) -> None:
        for callback in list(self._notices):
            callback(text, severity)
