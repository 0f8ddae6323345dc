"""``ferry audit list|verify|export``: read, check and export Ferry's hash-chained audit log."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from backend.audit import AuditLog
from backend.errors import IntegrityError, UsageError
from backend.fsutil import atomic_write
from backend.names import display_name
from tui.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit", help="the audit log: list, verify, export")
    group = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")

    p = group.add_parser("list", help="show audit events, oldest first")
    p.add_argument("--event", help="only this event (a trailing * matches a prefix)")
    p.add_argument("--since", help="only rows after this id, or at/after this ISO time")
    p.add_argument("--limit", type=int, help="only the newest N rows")
    p.add_argument("--text", help="only rows containing this text")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = group.add_parser("verify", help="check the hash chain (exit 12 if tampered)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify)

    p = group.add_parser("export", help="export the whole log")
    p.add_argument("--csv", action="store_true", required=True, help="CSV format")
    p.add_argument("-o", "--output", help="write to this file (default: stdout)")
    p.set_defaults(func=cmd_export)


def _since(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def cmd_list(args: argparse.Namespace) -> int:
    records = AuditLog().query(
        event=args.event, since=_since(args.since), limit=args.limit, text=args.text
    )
    if args.json:
        print_json([r.as_dict() for r in records])
        return 0
    for r in records:
        details = " ".join(f"{k}={v}" for k, v in sorted(r.fields.items()))
        print(display_name(f"{r.id:>6}  {r.ts[:19]}Z  {r.actor:<10} {r.event:<20} {details}"))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    log = AuditLog()
    result = log.verify()
    if args.json:
        print_json(
            {"ok": result.ok, "rows": result.rows, "first_bad_id": result.first_bad_id,
             "reason": result.reason}
        )
    if not result.ok:
        raise IntegrityError(
            f"audit log {log.path} failed verification: {result.reason}",
            hint="the log was edited outside Ferry; keep a copy and report it",
        )
    if not args.json:
        print(f"audit log OK: {result.rows} rows, chain intact")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    log = AuditLog()
    if args.output in (None, "-"):
        log.export_csv(sys.stdout)
        return 0
    try:
        buf = io.StringIO()
        count = log.export_csv(buf)
        atomic_write(Path(args.output), buf.getvalue(), mode=0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"exported {count} audit rows to {args.output}", file=sys.stderr)
    return 0
