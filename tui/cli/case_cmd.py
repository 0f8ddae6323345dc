"""``ferry case ...``: send a study, watch for results, archive old cases, list cases.

Thin wrappers over :mod:`backend.cases` (the TUI's case view calls the same functions):
``list``, ``send``, ``watch`` (headless: tmux, systemd, or cron with ``--once``) and
``archive`` (``--dry-run`` prints exactly the moves it would make).
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
from backend.errors import ConfigError, FerryError, UsageError
from backend.names import display_name
from tui.cli import inspect_cmd
from tui.cli.connect import connect_site, sftp_for
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

    send = csub.add_parser("send", help="send a study (folder or .zip)", description=(
        "Pack LOCAL_PATH (a study folder; a .zip is sent as it is) into <study-id>.zip and "
        "upload it where SITE's provider looks. Prints the study id."))
    send.add_argument("site")
    send.add_argument("local_path", metavar="LOCAL_PATH")
    send.add_argument("--study-id", metavar="ID", help="use this id instead of a fresh UUID")
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


def cmd_send(args: argparse.Namespace) -> int:
    source = Path(args.local_path)

    async def run() -> cases.SentStudy:
        async with transport.engine_for(connect_site) as engine, sftp_for(args.site) as (
            site, _conn, sftp,
        ):
            return await cases.send_study(site, sftp, engine, source, study_id=args.study_id)

    sent = asyncio.run(run())
    for name in sent.skipped:
        info(f"ferry: warning: not packed (symlink or special file): {display_name(name)}")
    info(f"sent {len(sent.files)} file(s) as {display_name(sent.remote_path)} "
         f"({sent.size} bytes, sha256 {sent.sha256})")
    print(sent.study_id)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    if args.interval < 1:
        raise UsageError("--interval must be at least 1 second")
    into = Path(args.into) if args.into else None
    kwargs = {"into": into, "on_event": _print_event, "email": args.email}
    if args.once:
        async def once() -> cases.WatchReport:
            async with transport.engine_for(connect_site) as engine, sftp_for(args.site) as (
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
        async with transport.engine_for(connect_site) as engine:
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
        raise FerryError(f"{len(result.failed)} case(s) could not be archived (see above)")
    if result.plan.refused and any("already exists" in r for r in result.plan.refused):
        raise ConfigError("some cases were not archived: their destination already exists")
    return 0
