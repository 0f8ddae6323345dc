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
from pathlib import Path

from backend import cases
from backend.cases import transport
from backend.errors import ConfigError, FerryError, PermissionDeniedError, UsageError
from backend.names import display_name
from backend.transfers.model import SHA256_OF_SERVER_COPY, verified_label
from tui.cli import inspect_cmd
from tui.cli.connect import cli_session, sftp_for
from tui.cli.output import info, print_json


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
    ls.set_defaults(func=cmd_list)

    show = csub.add_parser("show", help="one case in detail", description=(
        "Show one case of SITE: state, remote path, when it was sent, the zip's SHA-256 and "
        "how the server's copy was verified, results and archive paths."))
    show.add_argument("site")
    show.add_argument("case_id", metavar="CASE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
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


def cmd_list(args: argparse.Namespace) -> int:
    async def run() -> cases.CaseList:
        async with sftp_for(args.site) as (site, _conn, sftp):
            return await cases.case_list(site, sftp)

    result = asyncio.run(run())
    if args.json:
        print_json({"cases": [c.to_json() for c in result.cases], "problems": result.problems})
    else:
        for c in result.cases:
            when = c.downloaded_at or c.ready_at or c.sent_at or c.archived_at or ""
            print(f"{display_name(c.case_id):<40} {c.state:<14} {when}")
        for line in result.problems:
            print(f"ferry: warning: {line}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    async def run() -> cases.CaseList:
        async with sftp_for(args.site) as (site, _conn, sftp):
            return await cases.case_list(site, sftp)

    found = [c for c in asyncio.run(run()).cases if c.case_id == args.case_id]
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
            ("report", case.report_path), ("archived", case.archive_path)]
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


def cmd_send(args: argparse.Namespace) -> int:
    source = Path(args.local_path)

    async def run() -> cases.SentStudy:
        async with transport.engine_for(cli_session()) as engine, sftp_for(args.site) as (
            site, _conn, sftp,
        ):
            if site.upload_mode == "direct" and args.allow_partial_reads:
                info(f"ferry: warning: {cases.direct_mode_warning(site)}")
            return await cases.send_study(site, sftp, engine, source, study_id=args.study_id,
                                          allow_partial_reads=args.allow_partial_reads)

    sent = asyncio.run(run())
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
    print(sent.study_id)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    if args.interval < 1:
        raise UsageError("--interval must be at least 1 second")
    into = Path(args.into) if args.into else None
    kwargs = {"into": into, "on_event": _print_event, "email": args.email}
    if args.once:
        async def once() -> cases.WatchReport:
            async with transport.engine_for(cli_session()) as engine, sftp_for(args.site) as (
                site, _conn, sftp,
            ):
                return await cases.watch_once(site, sftp, engine, **kwargs)  # type: ignore[arg-type]

        report = asyncio.run(once())
        if report.waiting:
            info(f"waiting for {len(report.waiting)} result(s) to settle")
        return 0

    async def forever() -> None:
        from backend.sites.store import SiteStore

        site = SiteStore().get(args.site)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)

        @contextlib.asynccontextmanager
        async def open_sftp():  # type: ignore[no-untyped-def]
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
