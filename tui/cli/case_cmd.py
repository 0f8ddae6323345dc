"""``ferry case ...``: send a study, watch for results, archive old cases, list cases.

Thin wrappers over :mod:`backend.cases` (the TUI's case view calls the same functions):
``list``, ``show``, ``send`` (re-run with the same ``--study-id`` to resume an interrupted
send), ``watch`` (headless: tmux, systemd, or cron with ``--once``) and ``archive``
(``--dry-run`` prints exactly the moves it would make).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from backend import cases
from backend.cases import dicomsend, transport
from backend.cases.dicomsend import CaseSend, send_case
from backend.cases.send import check_study_id
from backend.dicom.mapping import MappingStore
from backend.dicom.policy import ContentOptions
from backend.errors import (
    EXIT_INTERRUPTED,
    ConfigError,
    FerryError,
    PermissionDeniedError,
    UsageError,
)
from backend.names import display_name
from backend.sites.store import SiteStore
from backend.transfers.model import SHA256_OF_SERVER_COPY, verified_label
from tui.cli import inspect_cmd
from tui.cli.connect import cli_session, sftp_for
from tui.cli.output import info, is_interactive, print_json
from tui.cli.vault_cli import PASSPHRASE_ENV, open_vault_unattended, unlock_vault

if TYPE_CHECKING:
    import asyncssh


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "case",
        help="case workflows: send a study, watch for results, archive",
        description="Case workflows on sites with the inbox-outbox or study-io layout.",
    )
    csub = p.add_subparsers(dest="case_command", metavar="SUBCOMMAND")
    inspect_cmd.register(csub)

    ls = csub.add_parser("list", help="list cases and their state", description=(
        "List the cases of SITE: sent, processing, results ready, downloaded, archived."))
    ls.add_argument("site")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--full-names", action="store_true",
                    help="de-identified cases: show the original patient in full")
    ls.set_defaults(func=cmd_list)

    show = csub.add_parser("show", help="one case in detail", description=(
        "Show one case of SITE: state, remote path, when it was sent, the zip's SHA-256 and "
        "how the server's copy was verified, results and archive paths."))
    show.add_argument("site")
    show.add_argument("case_id", metavar="CASE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--full-names", action="store_true",
                      help="de-identified cases: show the original patient in full")
    show.set_defaults(func=cmd_show)

    send = csub.add_parser("send", help="send a study (folder or .zip)", description=(
        "Pack LOCAL_PATH (a study folder; a .zip is sent as it is) into <study-id>.zip and "
        "upload it where SITE's provider looks. Prints the study id. Run it again with the "
        "same --study-id to resume an interrupted send."))
    send.add_argument("site")
    send.add_argument("local_path", metavar="LOCAL_PATH")
    send.add_argument("--study-id", metavar="ID",
                      help="use this id instead of a fresh UUID (again: resume its send)")
    send.add_argument("--allow-partial-reads", action="store_true", help=(
        "send to a site with upload_mode = direct, where the provider may read a partial "
        "study while it uploads"))
    send.add_argument("--split", action="store_true", help=(
        "a folder holding several studies: send one zip per study, each with its own id"))
    send.add_argument("--allow-non-dicom", action="store_true", help=(
        "let files that are not DICOM (a report) travel with the images"))
    send.add_argument("--deidentify", action="store_true", help=(
        "send a de-identified copy (DICOM PS3.15 Annex E Basic Profile); the link to the "
        "original patient is kept in the vault"))
    send.add_argument("--allow-burned-in", action="store_true", help=(
        "with --deidentify: send images that declare text burned into their pixels"))
    send.add_argument("--allow-identifiable", action="store_true", help=(
        "send identifying data to a site that requires de-identified studies (needs --reason)"))
    send.add_argument("--reason", default="", metavar="TEXT",
                      help="why --allow-identifiable is justified (written to the audit log)")
    send.add_argument("--no-agent", action="store_true", help=(
        "upload in this process (it stops with it) instead of in the Ferry agent"))
    send.set_defaults(func=cmd_send)

    watch = csub.add_parser("watch", help="download results as they become ready", description=(
        "Poll SITE's result folder; download each result once it has stopped changing "
        "across two polls. Runs until interrupted, or one poll with --once."))
    watch.add_argument("site")
    watch.add_argument("--once", action="store_true", help="poll once and exit (for cron)")
    watch.add_argument("--into", metavar="DIR", help="download cases into DIR/<case>")
    watch.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                       help="seconds between polls (default 60)")
    watch.add_argument("--email", action="store_true",
                       help="e-mail a notice (smtp.toml's notify_to) when results arrive")
    where = watch.add_mutually_exclusive_group()
    where.add_argument("--in-agent", action="store_true", help=(
        "let the Ferry agent watch (no terminal needed; it survives logout and restarts with "
        "the agent); returns at once"))
    where.add_argument("--stop", action="store_true",
                       help="stop the Ferry agent's watcher of SITE")
    watch.set_defaults(func=cmd_watch)

    arch = csub.add_parser("archive", help="move finished cases to the archive by year",
                           description=(
        "Move cases from the inbox to <archive>/<year>/ (year of the case folder's mtime) by "
        "SFTP rename. Nothing is deleted; an existing destination is refused."))
    arch.add_argument("site")
    arch.add_argument("cases", nargs="*", metavar="CASE")
    arch.add_argument("--older-than", metavar="DURATION",
                      help="also every case older than this (30d, 12h, 2w)")
    arch.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    arch.set_defaults(func=cmd_archive)


def _print_event(event: cases.CaseEvent) -> None:
    if event.kind == "problem":
        print(f"ferry: warning: {display_name(event.message)}", file=sys.stderr, flush=True)
    else:
        print(display_name(event.message), flush=True)


def _mappings(site_name: str) -> MappingStore | None:
    """The vault's de-identification mappings when this site has de-identified cases: from
    FERRY_VAULT_PASSPHRASE_FILE, or a prompt on a terminal; else None and a note."""
    cases_ = [r for r in cases.CaseStore().list(site_name) if r.deidentified]
    if not cases_:
        return None
    vault = open_vault_unattended()
    if vault is None and is_interactive():
        vault = unlock_vault()
    if vault is None:
        info(f"ferry: note: {len(cases_)} de-identified case(s): their patients are not shown "
             f"while the vault is locked (set {PASSPHRASE_ENV})")
        return None
    return MappingStore(vault)


def _patient(case: cases.CaseStatus) -> str:
    p = case.patient
    if not p:
        return ""
    return display_name(" ".join(x for x in (p["name"], f"({p['id']})" if p["id"] else "")
                                 if x))


def _listed(args: argparse.Namespace) -> cases.CaseList:
    mappings = _mappings(args.site)

    async def run() -> cases.CaseList:
        async with sftp_for(args.site) as (site, _conn, sftp):
            return await cases.case_list(site, sftp, mappings=mappings,
                                         full_names=args.full_names)

    return asyncio.run(run())


def cmd_list(args: argparse.Namespace) -> int:
    result = _listed(args)
    if args.json:
        print_json({"cases": [c.to_json() for c in result.cases], "problems": result.problems})
    else:
        for c in result.cases:
            when = c.downloaded_at or c.ready_at or c.sent_at or c.archived_at or ""
            patient = f"  {_patient(c)}" if c.patient else ""
            print(f"{display_name(c.case_id):<40} {c.state:<14} {when}{patient}")
        for line in result.problems:
            print(f"ferry: warning: {line}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    found = [c for c in _listed(args).cases if c.case_id == args.case_id]
    if not found:
        raise ConfigError(f"no case {display_name(args.case_id)!r} on {args.site}",
                          hint=f"ferry case list {args.site}")
    case = found[0]
    if args.json:
        print_json(case.to_json())
        return 0
    rows = [("case", case.case_id), ("state", case.state), ("remote path", case.remote_path),
            ("sent", case.sent_at), ("size", case.size), ("sha256", _digest(case)),
            ("verified", verified_label(case.verified_by) if case.sent_at else None),
            ("source", case.source), ("note", case.note), ("results", case.result_path),
            ("ready", case.ready_at), ("downloaded", case.local_path),
            ("report", case.report_path), ("archived", case.archive_path),
            ("patient", _patient(case) or None),
            ("identity", f"removed: {case.deidentified}" if case.deidentified else None)]
    for label, value in rows:
        if value not in (None, ""):
            print(f"{label + ':':<13}{display_name(str(value))}")
    return 0


def _digest(case: cases.CaseStatus) -> str | None:
    """The zip's SHA-256, said as the server's only when the server's copy was hashed."""
    if not case.sha256:
        return None
    if case.verified_by in SHA256_OF_SERVER_COPY:
        return case.sha256
    return f"{case.sha256} (of the local zip; the server's copy was not hashed)"


def _content_options(args: argparse.Namespace) -> ContentOptions:
    return ContentOptions(
        split=args.split, allow_non_dicom=args.allow_non_dicom, deidentify=args.deidentify,
        allow_identifiable=args.allow_identifiable, reason=args.reason,
        allow_burned_in=args.allow_burned_in,
    ).validate()


def _print_sent(sent: cases.SentStudy) -> None:
    for name in sent.skipped:
        info(f"ferry: warning: not packed (symlink or special file): {display_name(name)}")
    if sent.verified_by in SHA256_OF_SERVER_COPY:
        digest = f"sha256 {sent.sha256}"
    else:
        digest = f"sha256 of the local zip {sent.sha256}"
    count = f"{len(sent.files)} file(s) " if sent.files else ""
    info(f"{'resumed and sent' if sent.resumed else 'sent'} {count}as "
         f"{display_name(sent.remote_path)} ({sent.size} bytes; {digest}; "
         f"verified: {verified_label(sent.verified_by)})")
    print(sent.study_id, flush=True)


def cmd_send(args: argparse.Namespace) -> int:
    source = Path(args.local_path)
    options = _content_options(args)
    if args.study_id:
        check_study_id(args.study_id)
    planned = dicomsend.plan(source, options, SiteStore().get(args.site))  # before connecting
    async def run() -> CaseSend:
        mappings = None
        if options.deidentify:  # the session's vault: one unlock for the whole command
            vault = await cli_session().vault(create=True)
            assert vault is not None
            mappings = MappingStore(vault)
        async with _upload_engine(args, agent_used) as engine, sftp_for(args.site) as (
            site, _conn, sftp,
        ):
            if site.upload_mode == "direct" and args.allow_partial_reads:
                info(f"ferry: warning: {cases.direct_mode_warning(site)}")
            return await send_case(site, sftp, engine, source, options=options,
                                   study_id=args.study_id, mappings=mappings,
                                   allow_partial_reads=args.allow_partial_reads,
                                   on_sent=_print_sent, planned=planned)

    agent_used: list[int] = []
    try:
        result = asyncio.run(run())
    except KeyboardInterrupt:
        if not agent_used:
            raise
        info(f"detached: the upload continues in the Ferry agent (pid {agent_used[0]}), which "
             f"completes the case; 'ferry case list {args.site}' shows it, 'ferry queue "
             "watch' follows it")
        return EXIT_INTERRUPTED
    if result.override is not None:
        info(f"ferry: warning: identifying data sent to {args.site} under an override "
             f"(reason in the audit log): {len(result.override.findings)} attribute(s)")
    if result.deidentified:
        info(f"de-identified (DICOM PS3.15 Annex E Basic Profile); the link to the original "
             f"patient is in the vault for {len(result.sent)} case(s)")
    for line in result.left_out:
        info(f"ferry: warning: {line}")
    return 0


@contextlib.asynccontextmanager
async def _upload_engine(args: argparse.Namespace,
                         agent_used: list[int]) -> AsyncIterator[transport.Engine]:
    """The Ferry agent's engine (docs/agent.md): the study's upload is an agent job, so it
    and the case's completion outlive this command; in-process with ``--no-agent`` or when
    no agent can start (said in one note line)."""
    from tui.cli.agent_client import agent_engine, wanted

    engine = await agent_engine({args.site}) if wanted(args) else None
    if engine is not None:
        agent_used.append(engine.pid)
        try:
            yield engine
        finally:
            await engine.stop()
        return
    async with transport.engine_for(cli_session()) as in_process:
        yield in_process


def _watch_in_agent(args: argparse.Namespace) -> int:
    """``--in-agent`` / ``--stop``: the agent's case watcher of SITE (backend/agent/watchers.py)."""
    from backend.agent import client as agent

    async def call() -> tuple[int, object]:
        client = await agent.connect(start=args.in_agent, client="cli")
        try:
            if args.stop:
                return client.pid, await client.call("unwatch", site=args.site)
            into = str(Path(args.into).resolve()) if args.into else None
            return client.pid, await client.call("watch", site=args.site, interval=args.interval,
                                                 into=into, email=args.email)
        finally:
            await client.close()

    try:
        pid, result = asyncio.run(call())
    except agent.NotRunning:
        info(f"no Ferry agent is running, so nothing watches {args.site} there")
        return 0
    assert isinstance(result, dict)
    if args.stop:
        info(f"stopped the Ferry agent's watcher of {args.site}" if result["stopped"] else
             f"the Ferry agent (pid {pid}) was not watching {args.site}")
        return 0
    into_text = f" into {display_name(str(result['into']))}" if result["into"] else ""
    info(f"the Ferry agent (pid {pid}) watches {args.site} every {result['interval']:g} s"
         f"{into_text}; it keeps watching after you log out and when the agent restarts. "
         f"See 'ferry agent status'; stop with 'ferry case watch {args.site} --stop'")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    if args.interval < 1:
        raise UsageError("--interval must be at least 1 second")
    if args.in_agent or args.stop:
        if args.once:
            raise UsageError("--once cannot be combined with --in-agent or --stop")
        return _watch_in_agent(args)
    into = Path(args.into) if args.into else None
    kwargs = {"into": into, "on_event": _print_event, "email": args.email}
    if args.once:
        async def once() -> cases.WatchReport:
            async with transport.engine_for(cli_session()) as engine, sftp_for(args.site) as (
                site, _conn, sftp,
            ):
                return await cases.watch_once(site, sftp, engine, **kwargs)

        report = asyncio.run(once())
        if report.waiting:
            info(f"waiting for {len(report.waiting)} result(s) to settle")
        return 0

    async def forever() -> None:
        site = SiteStore().get(args.site)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)

        @contextlib.asynccontextmanager
        async def open_sftp() -> AsyncIterator[asyncssh.SFTPClient]:
            async with sftp_for(args.site) as (_site, _conn, sftp):
                yield sftp

        info(f"watching {site.name} every {args.interval:g} s (Ctrl-C to stop)")
        async with transport.engine_for(cli_session()) as engine:
            async for report in cases.watch_loop(
                site, open_sftp, engine, interval=args.interval, stop=stop, **kwargs,
            ):
                if report.problems and not report.downloaded and not report.waiting \
                        and report.problems[0].startswith("poll failed"):
                    info(f"ferry: warning: {report.problems[0]}; retrying")

    asyncio.run(forever())
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    older = cases.parse_age(args.older_than) if args.older_than else None
    if not args.cases and older is None:
        raise UsageError("name the cases to archive or give --older-than DURATION")

    async def run() -> cases.ArchiveResult:
        async with sftp_for(args.site) as (site, _conn, sftp):
            return await cases.archive(
                site, sftp, args.cases, older_than=older, dry_run=args.dry_run
            )

    result = asyncio.run(run())
    if result.failed and not result.moved and all(
        isinstance(e, PermissionDeniedError) for e in result.errors
    ):  # e.g. a read-only account: one line, nothing was moved
        raise PermissionDeniedError(
            f"{args.site}: the server refused to move cases (permission denied: a read-only "
            f"account?); nothing was moved",
            hint="ask the provider for write access to the inbox and archive folders",
        )
    moves = result.plan.moves if args.dry_run else result.moved
    for move in moves:
        print(f"{display_name(move.source)} -> {display_name(move.destination)}")
    for line in result.plan.refused + result.failed:
        print(f"ferry: warning: {display_name(line)}", file=sys.stderr)
    if args.dry_run:
        info(f"dry run: {len(moves)} case(s) would move; nothing changed")
    else:
        info(f"archived {len(moves)} case(s)")
    if result.failed:
        err = FerryError(f"{len(result.failed)} case(s) could not be archived (see above)")
        err.exit_code = result.errors[0].exit_code if result.errors else FerryError.exit_code
        raise err
    if result.plan.refused and any("already exists" in r for r in result.plan.refused):
        raise ConfigError("some cases were not archived: their destination already exists")
    return 0
