"""The ``ferry`` command as a client of the agent (docs/agent.md, docs/cli.md "Agent").

``ferry get`` / ``put`` / ``queue resume`` / ``queue retry`` queue their job in the agent
(starting it on first need) and follow it: the same progress, lines, summary and exit code as
in-process (tui/cli/transfer_cmd.py prints them from the agent's reports through
:class:`RemoteView`). Ctrl-C detaches (the job keeps running) and says how to follow it;
``--detach`` returns at once with the job number. A question the job waits on (an unknown host
key, the vault passphrase, a password) is asked here with the terminal prompter
(tui/cli/connect.py), exactly as in-process. ``queue list|pause|cancel`` ask the agent when one
runs; ``queue watch`` follows every job live. ``--no-agent`` / ``FERRY_NO_AGENT=1``: everything
runs in this process as before; so does a command whose agent cannot start (with a note).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from backend.agent import client as agent
from backend.agent import protocol, remote
from backend.agent.remote import AgentEngine, event_of, status_of
from backend.errors import EXIT_INTERRUPTED, AgentError, FerryError
from backend.transfers import FileStatus, JobSpec, JobStatus, TransferEvent
from backend.transfers.model import FINISHED_STATES
from backend.transfers.moves import MoveOutcome
from tui.cli.connect import TerminalPrompter
from tui.cli.output import info, is_interactive, print_json

log = logging.getLogger("ferry.cli")


def wanted(args: argparse.Namespace | None) -> bool:
    return not (agent.disabled() or getattr(args, "no_agent", False)
                or getattr(args, "tui_no_agent", False))  # ``ferry --no-agent get ...``


class RemoteView:
    """What transfer_cmd's reporter and summary read from an engine, from the agent."""

    def __init__(self) -> None:
        self.statuses: dict[int, JobStatus] = {}
        self.reports: dict[int, dict[str, Any]] = {}

    def set_jobs(self, jobs: list[dict[str, Any]]) -> None:
        for data in jobs:
            status = status_of(data)
            self.statuses[status.id] = status

    def add_report(self, report: dict[str, Any]) -> JobStatus:
        status = status_of(report["status"])
        self.statuses[status.id] = status
        self.reports[status.id] = report
        return status

    def jobs(self) -> list[JobStatus]:
        return list(self.statuses.values())

    def files(self, job_id: int) -> list[FileStatus]:
        report = self.reports.get(job_id, {})
        out = [FileStatus(0, job_id, "", "", "done", 0, 0, 0, verify=method)
               for method, count in report.get("verified", []) for _ in range(count)]
        out += [FileStatus(0, job_id, f["source"], "", "failed", 0, 0, 0, error=f["error"])
                for f in report.get("failed", [])]
        return out

    def job_error(self, job_id: int) -> FerryError | None:
        error = self.reports.get(job_id, {}).get("error")
        return protocol.error_from_json(error) if error else None

    def notes(self, job_id: int) -> list[str]:
        return list(self.reports.get(job_id, {}).get("notes", []))

    def move_outcome(self, job_id: int) -> MoveOutcome | None:
        data = self.reports.get(job_id, {}).get("move")
        return MoveOutcome.from_json(data) if data else None


class Answerer(remote.Answerer):
    """The agent's questions asked on this terminal (tui/cli/connect.py), as in-process."""

    def __init__(self, client: agent.AgentClient, sites: set[str] | None) -> None:
        super().__init__(client, TerminalPrompter(), sites)


class JobFilter:
    """Passes on to ``sink`` (a reporter) the events of the jobs a command follows — the agent
    also runs everybody else's. A job's events that arrive before the command knows its number
    (the "queued" event comes before the submit's reply; a relay's next leg) wait, up to 1,000,
    and are passed on in order when it follows that job."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.jobs: set[int] | None = set()  # None: every job
        self.early: list[TransferEvent] = []

    def follow(self, job_id: int) -> None:
        assert self.jobs is not None
        self.jobs.add(job_id)
        mine = [e for e in self.early if e.job_id == job_id]
        self.early = [e for e in self.early if e.job_id != job_id]
        for event in mine:
            self.sink.event(event)

    def event(self, event: TransferEvent) -> None:
        if self.jobs is None or event.job_id in self.jobs:
            self.sink.event(event)
        elif event.kind != "progress" and len(self.early) < 1000:
            self.early.append(event)


class Follower(JobFilter):
    """Feeds the agent's events for some jobs to transfer_cmd's reporter, and its questions to
    the answerer."""

    def __init__(self, client: agent.AgentClient, reporter: Any,
                 answerer: Answerer | None) -> None:
        super().__init__(reporter)
        self.answerer = answerer
        client.on_event(self.on_agent_event)

    def on_agent_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "attention":
            if self.answerer is not None:
                self.answerer.offer(data)
        elif name in ("job", "file", "progress"):
            self.event(event_of(data))


async def _connect(start: bool) -> agent.AgentClient:
    return await agent.connect(start=start, client="cli")


def fallback_note(exc: AgentError) -> None:
    info(f"ferry: note: {exc.message}; running here instead (--no-agent)")
    log.warning("agent unavailable: %s", exc)


def detached_note(jobs: list[int]) -> None:
    """What Ctrl-C says when the command's jobs go on in the agent."""
    listed = " ".join(str(j) for j in jobs)
    info(f"detached: job {listed} continues in the Ferry agent; follow it with "
         f"'ferry queue watch {jobs[0]}', stop it with 'ferry queue pause {jobs[0]}'")


async def agent_engine(sites: set[str] | None) -> AgentEngine | None:
    """The Ferry agent's engine for a command (backend/agent/remote.py), asking on this
    terminal the questions of jobs on ``sites``; None (after a note) when none can start."""
    engine = AgentEngine(TerminalPrompter(), client_name="cli", sites=sites)
    try:
        await engine.start()
    except agent.StartFailed as exc:
        fallback_note(exc)
        return None
    return engine


# -- get / put / queue resume / queue retry ----------------------------------------------------


def run_spec(spec: JobSpec, as_json: bool, detach: bool) -> int | None:
    """Queue ``spec`` in the agent and follow it; None when no agent could be started."""
    return _run(lambda client: _submit(client, spec), {spec.site}, as_json, detach)


def resume(job: int | None, as_json: bool, action: str) -> int | None:
    async def submit(client: agent.AgentClient) -> list[int]:
        if job is not None:
            await client.call(action, job=job)
            return [job]
        ids = [j["id"] for j in await client.call("jobs") if j["state"] in ("queued", "running",
                                                                            "paused")]
        for j in ids:
            await client.call("resume", job=j)
        return ids

    return _run(submit, None, as_json, False)


async def _submit(client: agent.AgentClient, spec: JobSpec) -> list[int]:
    result = await client.call("submit", spec=spec.to_json(), adopt=True)
    return [int(result["job"])]


def _run(submit: Any, sites: set[str] | None, as_json: bool, detach: bool) -> int | None:
    state: dict[str, Any] = {"jobs": []}
    try:
        return asyncio.run(_follow(submit, sites, as_json, detach, state))
    except agent.StartFailed as exc:
        fallback_note(exc)
        return None
    except KeyboardInterrupt:
        jobs = state["jobs"]
        if not jobs:
            info("ferry: error: interrupted")
            return EXIT_INTERRUPTED
        detached_note(jobs)
        return EXIT_INTERRUPTED


async def _follow(submit: Any, sites: set[str] | None, as_json: bool, detach: bool,
                  state: dict[str, Any]) -> int:
    from tui.cli.transfer_cmd import _print_notes, _Reporter, _summarise

    client = await _connect(start=True)
    view = RemoteView()
    reporter = _Reporter(as_json)
    follower = Follower(client, reporter, None if detach else Answerer(client, sites))
    try:
        if not detach:
            await client.call("subscribe", jobs=None, progress_hz=10, prompts=True)
        job_ids = list(await submit(client))
        state["jobs"] = job_ids
        if detach:
            for job_id in job_ids:
                if as_json:
                    print_json({"job_id": job_id, "state": "queued", "agent_pid": client.pid})
                else:
                    print(f"job {job_id} queued in the Ferry agent (pid {client.pid}); "
                          f"follow it with 'ferry queue watch {job_id}'", flush=True)
            return 0
        for job_id in job_ids:
            follower.follow(job_id)
        view.set_jobs(await client.call("jobs"))
        reporter.open(view, job_ids)
        statuses: list[JobStatus] = []
        try:
            waiting = list(job_ids)
            while waiting:
                job_id = waiting.pop(0)
                report = await client.call("wait", job=job_id)
                statuses.append(view.add_report(report))
                for nxt in report.get("next", []):  # a relay's upload leg
                    if nxt not in job_ids:
                        job_ids.append(nxt)
                        waiting.append(nxt)
                        follower.follow(nxt)
        finally:
            reporter.close()
    finally:
        await client.close()
    _print_notes(view, [s.id for s in statuses])
    return _summarise(view, statuses, as_json)


# -- queue list / pause / cancel / watch ------------------------------------------------------


def running_agent_call(method: str, **params: Any) -> Any:
    """``method`` on the running agent; raises agent.NotRunning when none runs."""
    async def call() -> Any:
        client = await _connect(start=False)
        try:
            return await client.call(method, **params)
        finally:
            await client.close()

    return asyncio.run(call())


def queue_list(as_json: bool) -> int | None:
    try:
        jobs = running_agent_call("jobs")
    except agent.NotRunning:
        return None
    if as_json:
        print_json(jobs)
        return 0
    from tui.cli.transfer_cmd import print_status_line

    if not jobs:
        print("the queue is empty")
    for data in jobs:
        print_status_line(status_of(data), data.get("attention"))
    return 0


def queue_control(action: str, job: int) -> int | None:
    try:
        result = running_agent_call(action, job=job)
    except agent.NotRunning:
        return None
    print(f"job {job} {'paused' if action == 'pause' else 'cancelled'}")
    for note in result.get("notes", []):
        from backend.names import display_name

        print(f"job {job}: {display_name(note)}", file=sys.stderr)
    return 0


def queue_watch(job: int | None, as_json: bool) -> int:
    """Follow one job to its end (its summary and exit code), or every job until Ctrl-C."""
    try:
        return asyncio.run(_watch(job, as_json))
    except KeyboardInterrupt:
        return 0 if job is None else EXIT_INTERRUPTED


async def _watch(job: int | None, as_json: bool) -> int:
    from tui.cli.transfer_cmd import _print_notes, _Reporter, _summarise

    client = await _connect(start=False)
    view = RemoteView()
    reporter = _Reporter(as_json)
    answerer = Answerer(client, None) if is_interactive() else None
    follower = Follower(client, _WatchPrinter(reporter, view, as_json), answerer)
    follower.jobs = None if job is None else {job}
    try:
        snapshot = await client.call("subscribe", jobs=None if job is None else [job],
                                     progress_hz=4, prompts=answerer is not None)
        view.set_jobs(snapshot["jobs"])
        if job is None:
            if not as_json:
                live = [j for j in view.jobs() if j.state not in FINISHED_STATES]
                print(f"watching the Ferry agent (pid {client.pid}): {len(live)} unfinished "
                      "job(s); Ctrl-C stops watching (the jobs go on)", flush=True)
            reporter.open(view, [j.id for j in view.jobs() if j.state not in FINISHED_STATES])
            try:
                await client.closed.wait()
            finally:
                reporter.close()
            raise client.lost or AgentError("the Ferry agent went away")
        view.statuses.get(job) or await client.call("report", job=job)  # unknown: UsageError
        reporter.open(view, [job])
        try:
            status = view.add_report(await client.call("wait", job=job))
        finally:
            reporter.close()
    finally:
        await client.close()
    _print_notes(view, [status.id])
    return _summarise(view, [status], as_json)


class _WatchPrinter:
    """transfer_cmd's reporter, plus a line per job state change when watching everything."""

    def __init__(self, reporter: Any, view: RemoteView, as_json: bool) -> None:
        self.reporter = reporter
        self.view = view
        self.as_json = as_json
        self.shown: dict[int, str] = {}

    def event(self, event: TransferEvent) -> None:
        self.reporter.event(event)
        if self.as_json or event.kind != "job" or self.shown.get(event.job_id) == event.state:
            return
        self.shown[event.job_id] = event.state
        status = self.view.statuses.get(event.job_id)
        label = status.label if status is not None else f"transfer {event.job_id}"
        error = f": {event.error}" if event.error and event.state == "failed" else ""
        line = f"job {event.job_id} {event.state}  {label}{error}"
        progress = getattr(self.reporter, "_progress", None)
        if progress is not None:
            from rich.text import Text

            progress.console.print(Text(line))
        else:
            print(line, flush=True)
