"""``ferry get``, ``ferry put`` and ``ferry queue``: the transfer engine from the command line.

``get``/``put`` queue one job in the persistent journal and run it in this process until it
finishes: progress bars (speed, ETA) on a terminal, one plain line per finished file otherwise,
or one JSON event per line with ``--json``. Re-running the same command after an interruption
continues the unfinished job from its verified offsets. Exit 0 when every file succeeded, 11
when any failed (the failures are listed on stderr), or the code of a whole-job error (e.g. 7
for an unknown host key). ``queue`` lists and controls jobs, including ones another ``ferry``
process (or the TUI) is running: that process notices within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypedDict

from backend.errors import EXIT_INTERRUPTED, FerryError, TransferError, UsageError
from backend.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES
from backend.names import display_name, is_escaped
from backend.relay import next_legs
from backend.remote import parse_remote_spec
from backend.sites.store import SiteStore
from backend.transfers import JobSpec, JobStatus, Journal, TransferEngine, TransferEvent, moves
from backend.transfers.model import (
    CONFLICT_POLICIES,
    FINISHED_STATES,
    SHA256_OF_SERVER_COPY,
    VERIFY_MODES,
    FileStatus,
    verified_counts,
    verified_label,
)
from backend.units import human_size
from tui.cli.connect import cli_session
from tui.cli.output import print_json

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from backend.agent.remote import AgentEngine

    Engine = TransferEngine | AgentEngine
    """This process's engine, or the Ferry agent's as a command sees it."""

EXIT_FAILED = TransferError.exit_code


def register(sub: argparse._SubParsersAction) -> None:
    get = sub.add_parser(
        "get", help="download files from a site",
        description="Download SITE:REMOTE paths into LOCAL (verified, resumable).",
    )
    get.add_argument("paths", nargs="+", metavar="SITE:REMOTE... LOCAL")
    _options(get)
    get.set_defaults(func=cmd_get)

    put = sub.add_parser(
        "put", help="upload files to a site",
        description="Upload LOCAL paths to SITE:REMOTE (temp name, then rename; verified).",
    )
    put.add_argument("paths", nargs="+", metavar="LOCAL... SITE:REMOTE")
    _options(put)
    put.set_defaults(func=cmd_put)

    queue = sub.add_parser("queue", help="list and control transfer jobs",
                           description="List and control the transfer queue.")
    qsub = queue.add_subparsers(dest="queue_command", metavar="ACTION")
    ls = qsub.add_parser("list", help="jobs in the queue")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    _no_agent(ls)
    ls.set_defaults(func=cmd_queue_list)
    for name, helptext in (("pause", "pause a job (even one another process runs)"),
                           ("cancel", "cancel a job and remove its partial files")):
        p = qsub.add_parser(name, help=helptext)
        p.add_argument("job", type=int, metavar="JOB")
        _no_agent(p)
        p.set_defaults(func=cmd_queue_control, action=name)
    resume = qsub.add_parser("resume", help="run unfinished jobs (or JOB) until done")
    resume.add_argument("job", type=int, nargs="?", metavar="JOB")
    resume.add_argument("--json", action="store_true", help="one JSON event per line")
    _no_agent(resume)
    resume.set_defaults(func=cmd_queue_resume)
    retry = qsub.add_parser("retry", help="queue a failed job again and follow it")
    retry.add_argument("job", type=int, metavar="JOB")
    retry.add_argument("--json", action="store_true", help="one JSON event per line")
    _no_agent(retry)
    retry.set_defaults(func=cmd_queue_retry)
    clear = qsub.add_parser("clear", help="forget finished jobs (all, or JOB...)",
                            description="Forget finished jobs (done, failed, cancelled): all of "
                            "them, or the JOBs given. Files are not touched; unfinished jobs "
                            "stay.")
    clear.add_argument("jobs", type=int, nargs="*", metavar="JOB")
    clear.add_argument("--json", action="store_true", help="machine-readable output")
    clear.set_defaults(func=cmd_queue_clear)
    watch = qsub.add_parser("watch", help="follow the agent's jobs live (or JOB to its end)")
    watch.add_argument("job", type=int, nargs="?", metavar="JOB")
    watch.add_argument("--json", action="store_true", help="one JSON event per line")
    watch.set_defaults(func=cmd_queue_watch)


def _no_agent(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-agent", action="store_true",
                   help="run here, not in the Ferry agent (also: FERRY_NO_AGENT=1)")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--recursive", action="store_true", help="copy folders recursively")
    p.add_argument("--on-conflict", choices=CONFLICT_POLICIES, default="resume",
                   help="when the destination exists (default: resume: skip it when it has "
                        "the same size and content; without exec on the server only its last "
                        "64 KiB are compared)")
    p.add_argument("--verify", choices=VERIFY_MODES, default="auto",
                   help="check each file: auto (default: the strongest the server allows), "
                        "sha256 (a SHA-256 of the server's copy, or the file fails), "
                        "size (size and last 64 KiB), none")
    p.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="files at once (default 64)")
    p.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES, metavar="N",
                   help=f"stop planning past N files and folders (default {DEFAULT_MAX_ENTRIES:,})")
    p.add_argument("--max-depth", type=int, default=DEFAULT_MAX_DEPTH, metavar="N",
                   help=f"stop planning past N folder levels (default {DEFAULT_MAX_DEPTH})")
    p.add_argument("--max-bytes", type=_size, default=None, metavar="SIZE",
                   help="stop planning past SIZE in total, e.g. 500GiB (default: no cap)")
    p.add_argument("--move", action="store_true",
                   help="delete each original once its copy is verified (kept when its copy "
                        "failed, was skipped or could not be checked; resumable)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--detach", action="store_true",
                   help="queue the job in the Ferry agent and return at once with its number")
    _no_agent(p)


def _size(text: str) -> int:
    from backend.shares.policy import parse_size

    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Caps(TypedDict):
    """JobSpec's planning caps as the options give them (backend/transfers/model.py)."""

    max_entries: int
    max_depth: int
    max_bytes: int | None


def _caps(args: argparse.Namespace) -> _Caps:
    return {"max_entries": args.max_entries, "max_depth": args.max_depth,
            "max_bytes": args.max_bytes}


# -- the engine as the CLI uses it ------------------------------------------------------------


def make_engine(run_all_jobs: bool = False) -> TransferEngine:
    """The engine as every face builds it (backend/session.py), with the CLI's prompter."""
    return cli_session().engine(run_all_jobs=run_all_jobs)


def _parse_get(paths: list[str]) -> tuple[str, list[str], str]:
    if len(paths) < 2:
        raise UsageError("ferry get needs SITE:REMOTE... LOCAL")
    *sources, local = paths
    site: str | None = None
    remotes = []
    for spec in sources:
        parsed = parse_remote_spec(spec)
        if parsed is None:
            raise UsageError(f"expected SITE:REMOTE, got {spec!r}")
        if site is not None and parsed[0] != site:
            raise UsageError("all sources of one ferry get must be on the same site")
        site = parsed[0]
        remotes.append(parsed[1] or ".")
    if parse_remote_spec(local) is not None and not local.startswith(("/", ".")):
        raise UsageError(f"the last argument must be a local path, got {local!r}")
    assert site is not None
    return site, remotes, local


def _parse_put(paths: list[str]) -> tuple[str, list[str], str]:
    if len(paths) < 2:
        raise UsageError("ferry put needs LOCAL... SITE:REMOTE")
    *sources, target = paths
    parsed = parse_remote_spec(target)
    if parsed is None:
        raise UsageError(f"the last argument must be SITE:REMOTE, got {target!r}")
    return parsed[0], sources, parsed[1] or "."


def cmd_get(args: argparse.Namespace) -> int:
    site, sources, local = _parse_get(args.paths)
    return _run_spec(JobSpec("get", site, sources, local, args.recursive, args.on_conflict,
                             args.verify, args.parallel, **_caps(args),
                             tag=moves.TAG if args.move else None), args.json, args)


def cmd_put(args: argparse.Namespace) -> int:
    site, sources, remote = _parse_put(args.paths)
    return _run_spec(JobSpec("put", site, sources, remote, args.recursive, args.on_conflict,
                             args.verify, args.parallel, **_caps(args),
                             tag=moves.TAG if args.move else None), args.json, args)


def _run_spec(spec: JobSpec, as_json: bool, args: argparse.Namespace | None = None) -> int:
    """Queue ``spec`` (or adopt the unfinished identical job) in the agent and follow it
    (tui/cli/agent_client.py), or without one run it here."""
    spec.validate()
    SiteStore().get(spec.site)  # an unknown site: exit 3 before a job is queued for it
    from tui.cli import agent_client

    if args is not None and agent_client.wanted(args):
        code = agent_client.run_spec(spec, as_json, bool(getattr(args, "detach", False)))
        if code is not None:
            return code
    elif getattr(args, "detach", False):
        raise UsageError("--detach needs the Ferry agent", hint="drop --no-agent")

    async def run(engine: Engine) -> list[int]:
        return [await engine.adopt(spec)]

    return _drive(run, as_json, run_all_jobs=False)


def _drive(submit: Submit, as_json: bool, *, run_all_jobs: bool, agent: bool = False,
           sites: set[str] | None = None) -> int:
    """Run the engine until the jobs ``submit`` returns have finished; report; exit code.
    ``agent``: the Ferry agent's engine (backend/agent/remote.py), so the jobs outlive this
    command (Ctrl-C detaches) and questions of jobs on ``sites`` are asked here; this
    process's when none can start (said in a note)."""
    from tui.cli import agent_client

    queued: list[int] = []
    try:
        return asyncio.run(_drive_async(submit, as_json, run_all_jobs, agent, sites, queued))
    except KeyboardInterrupt:
        if not (agent and queued):
            raise
        agent_client.detached_note(queued)
        return EXIT_INTERRUPTED


async def _drive_async(submit: Submit, as_json: bool, run_all_jobs: bool, agent: bool,
                       sites: set[str] | None, queued: list[int]) -> int:
    from tui.cli import agent_client

    remote = await agent_client.agent_engine(sites) if agent else None
    engine = remote or make_engine(run_all_jobs)
    reporter = _Reporter(as_json)
    mine = agent_client.JobFilter(reporter)  # the agent runs other people's jobs too
    unsubscribe = engine.subscribe(mine.event)
    try:
        if remote is None:
            await engine.start()
        job_ids = list(await submit(engine))
        queued += job_ids
        for job_id in job_ids:
            mine.follow(job_id)
        reporter.open(engine, job_ids)
        statuses = [await engine.wait(j) for j in job_ids]
        # a finished job may have queued the next one (a site-to-site relay's upload leg)
        while more := [j for j in next_legs(engine.journal, [s.id for s in statuses])
                       if j not in {s.id for s in statuses}]:
            for job_id in more:
                mine.follow(job_id)
            statuses += [await engine.wait(j) for j in more]
    finally:
        reporter.close()
        unsubscribe()
        await engine.stop()
    _print_notes(engine, [s.id for s in statuses])
    return _summarise(engine, statuses, as_json)


Submit = Callable[["Engine"], Awaitable[Iterable[int]]]
"""Queues a command's jobs on the engine; returns their numbers."""


class JobsView(Protocol):
    """What the reporter and the summary read about jobs: the engine, or what the transfer
    agent reported (tui/cli/agent_client.py ``RemoteView``)."""

    def jobs(self) -> list[JobStatus]: ...

    def files(self, job_id: int) -> list[FileStatus]: ...

    def job_error(self, job_id: int) -> FerryError | None: ...

    def notes(self, job_id: int) -> list[str]: ...


def _print_notes(engine: JobsView, job_ids: list[int]) -> None:
    """What finished tagged jobs completed (e.g. a case recorded as sent; what a cancelled
    study send could not remove from the server): backend/transfers/finishers.py."""
    for job_id in job_ids:
        for note in engine.notes(job_id):
            print(f"job {job_id}: {display_name(note)}", file=sys.stderr)


def verified_summary(methods: list[str | None]) -> str:
    """``2 sha256 by read-back, 1 size only``: how a job's done files were checked,
    strongest first."""
    return ", ".join(f"{n} {verified_label(m)}" for m, n in verified_counts(methods))


def _summarise(engine: JobsView, statuses: list[JobStatus], as_json: bool = False) -> int:
    code = 0
    for status in statuses:
        if not as_json:
            done = [f for f in engine.files(status.id) if f.state == "done"]
            if done:
                print(f"job {status.id}: {len(done)} of {status.files_total} files done, "
                      f"verified: {verified_summary([f.verify for f in done])}", flush=True)
        moved = (engine.move_outcome(status.id) if hasattr(engine, "move_outcome")
                 else moves.outcome_of(engine, status.id))  # the agent's (agent_client.py)
        if moved is not None and as_json:
            print(json.dumps({"kind": "move", "job_id": status.id, **moved.to_json()}),
                  flush=True)
        if moved is not None and status.state == "done" and not moved.complete:
            print(f"ferry: error: job {status.id}: copied, but "
                  f"{len(moved.kept) + len(moved.folders_kept)} original(s) kept "
                  "(listed above)", file=sys.stderr)
            code = code or EXIT_FAILED
        if status.state == "done":
            continue
        whole = engine.job_error(status.id)
        if whole is not None:
            print(f"ferry: error: job {status.id}: {display_name(str(whole))}", file=sys.stderr)
            code = code or whole.exit_code
            continue
        failed = [f for f in engine.files(status.id) if f.state == "failed"]
        print(f"ferry: error: job {status.id} {status.state}: {len(failed)} of "
              f"{status.files_total} files failed", file=sys.stderr)
        for f in failed:
            print(f"  {display_name(f.source)}: {display_name(f.error or 'failed')}",
                  file=sys.stderr)
        if status.state == "failed" and not failed and status.error:
            print(f"  {display_name(status.error)}", file=sys.stderr)
        code = code or EXIT_FAILED
    return code


class _Reporter:
    """Progress bars on a terminal, a line per finished file otherwise, or JSON lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = not as_json and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._tasks: dict[int, TaskID] = {}

    def open(self, engine: JobsView, job_ids: list[int]) -> None:
        if not self.tty:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._progress.start()
        for status in engine.jobs():
            if status.id in job_ids:
                self._tasks[status.id] = self._progress.add_task(
                    f"#{status.id} {status.label}", total=status.bytes_total or None,
                    completed=status.bytes_done,
                )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: TransferEvent) -> None:
        if self.as_json:
            print(json.dumps(event_json(event)), flush=True)
            return
        if event.kind == "file" and event.state in ("done", "skipped", "failed"):
            line = self._file_line(event)
            if self._progress is not None:
                from rich.text import Text

                self._progress.console.print(Text(line))
            else:
                print(line, flush=True)
        if self._progress is not None and event.job_id in self._tasks:
            self._progress.update(
                self._tasks[event.job_id],
                completed=event.bytes_done, total=event.bytes_total or None,
            )

    @staticmethod
    def _file_line(event: TransferEvent) -> str:
        src = display_name(event.path or "")
        if event.state == "failed":
            return f"failed   {src}: {display_name(event.error or '')}"
        if event.state == "skipped":
            return f"skipped  {src} ({display_name(event.error or 'exists')})"
        dst = display_name(event.destination or "")
        # a digest is only shown when it is the server's copy's (never a local hash alone)
        digest = (f" sha256:{event.sha256[:16]}"
                  if event.sha256 and event.verify in SHA256_OF_SERVER_COPY else "")
        notes = [display_name(event.note)] if event.note else []  # e.g. restarted from zero
        # a server name that is not UTF-8 is spelled \xHH, locally too (docs/cli.md)
        if is_escaped((event.destination or "").rsplit("/", 1)[-1]):
            notes.append("the server's name is not UTF-8; the local name spells it \\xHH")
        note = "".join(f" ({n})" for n in notes)
        return f"done     {src} -> {dst}{digest} [{verified_label(event.verify)}]{note}"


def event_json(event: TransferEvent) -> dict[str, object]:
    """One ``--json`` line: the event, plus for finished files ``verified_by`` (the method's
    machine name), ``verified_label`` (its words) and ``server_sha256`` (the digest when it
    is of the server's copy, else null; ``sha256`` is of the bytes sent or received)."""
    data = event.to_json()
    if event.kind == "file" and event.state == "done":
        data["verified_by"] = "sha256-server" if event.verify == "sha256" else event.verify
        data["verified_label"] = verified_label(event.verify)
        data["server_sha256"] = (event.sha256 if event.verify in SHA256_OF_SERVER_COPY
                                 else None)
    return data


# -- queue --------------------------------------------------------------------------------------


def cmd_queue_list(args: argparse.Namespace) -> int:
    from tui.cli import agent_client

    if agent_client.wanted(args) and (code := agent_client.queue_list(args.json)) is not None:
        return code
    statuses = Journal().statuses()
    if args.json:
        print_json([s.to_json() for s in statuses])
        return 0
    if not statuses:
        print("the queue is empty")
        return 0
    for s in statuses:
        print_status_line(s)
    return 0


def print_status_line(s: JobStatus, attention: str | None = None) -> None:
    size = human_size(s.bytes_total)
    done = human_size(s.bytes_done)
    failed = f", {s.files_failed} failed" if s.files_failed else ""
    error = f"  ({display_name(s.error)})" if s.error else ""
    waits = f"  (needs attention: {display_name(attention)})" if attention else ""
    print(f"{s.id:>4}  {s.state:<9} {s.direction:<3}  {display_name(s.label)}  "
          f"{done}/{size}  {s.files_done}/{s.files_total} files{failed}{error}{waits}")


def cmd_queue_clear(args: argparse.Namespace) -> int:
    """The journal is shared by every process (the agent's too): finished jobs are no one's."""
    from backend.transfers.journal import forget_finished

    journal = Journal()
    if args.jobs:
        states = {s.id: s.state for s in journal.statuses()}
        unknown = [j for j in args.jobs if j not in states]
        if unknown:
            raise UsageError(f"no transfer job {unknown[0]}", hint="see 'ferry queue list'")
        busy = [j for j in args.jobs if states[j] not in FINISHED_STATES]
        if busy:
            raise UsageError(f"job {busy[0]} is {states[busy[0]]}, not finished",
                             hint=f"'ferry queue cancel {busy[0]}' first")
    forgotten = forget_finished(journal, args.jobs or None)
    if args.json:
        print_json({"forgotten": forgotten})
    else:
        print(f"forgot {len(forgotten)} finished job(s)" if forgotten
              else "no finished jobs to forget")
    return 0


def cmd_queue_control(args: argparse.Namespace) -> int:
    from tui.cli import agent_client

    if agent_client.wanted(args) and (
            code := agent_client.queue_control(args.action, args.job)) is not None:
        return code
    journal = Journal()
    if args.action == "pause":
        journal.request_state(args.job, "paused", ["queued", "running"])
        print(f"job {args.job} paused")
        return 0

    async def cancel() -> TransferEngine:
        engine = make_engine()
        await engine.cancel(args.job)
        return engine

    engine = asyncio.run(cancel())
    print(f"job {args.job} cancelled")
    _print_notes(engine, [args.job])
    return 0


def cmd_queue_resume(args: argparse.Namespace) -> int:
    from tui.cli import agent_client

    if agent_client.wanted(args) and (
            code := agent_client.resume(args.job, args.json, "resume")) is not None:
        return code

    async def submit(engine: Engine) -> list[int]:
        if args.job is not None:
            await engine.resume(args.job)
            return [args.job]
        jobs = [j for j in engine.journal.job_rows(unfinished_only=True)
                if not engine.journal.owned_by_other(j, engine.me)]
        for job in jobs:
            await engine.resume(job.id)  # paused ones too: "resume" means run them
        return [j.id for j in jobs]

    return _drive(submit, args.json, run_all_jobs=False)


def cmd_queue_retry(args: argparse.Namespace) -> int:
    from tui.cli import agent_client

    if agent_client.wanted(args) and (
            code := agent_client.resume(args.job, args.json, "retry")) is not None:
        return code

    async def submit(engine: Engine) -> list[int]:
        await engine.retry(args.job)
        return [args.job]

    return _drive(submit, args.json, run_all_jobs=False)


def cmd_queue_watch(args: argparse.Namespace) -> int:
    from tui.cli import agent_client

    return agent_client.queue_watch(args.job, args.json)


__all__ = ["FINISHED_STATES", "register"]
