"""``ferry audit list|verify|anchor|export``: read, check, anchor and export Ferry's audit log.

``verify`` recomputes the chain and compares its end with the keyed head (docs/security.md,
"Audit log"); ``anchor --to FILE`` appends the verified, signed end of the chain to a file the
operator keeps elsewhere, and ``verify --anchor FILE`` proves each anchored end is still part
of the chain. Every tampering found exits 12 (:class:`backend.errors.IntegrityError`).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from backend.audit import AuditLog, VerifyResult
from backend.errors import IntegrityError, UsageError
from backend.fsutil import atomic_write
from backend.names import display_name
from tui.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit", help="the audit log: list, verify, anchor, export")
    group = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")

    p = group.add_parser("list", help="show audit events, oldest first")
    p.add_argument("--event", help="only this event (a trailing * matches a prefix)")
    p.add_argument("--since", help="only rows after this id, or at/after this ISO time")
    p.add_argument("--limit", type=int, help="only the newest N rows")
    p.add_argument("--text", help="only rows containing this text")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = group.add_parser("verify", help="check the chain and its keyed head (exit 12 if tampered)")
    p.add_argument("--anchor", metavar="FILE",
                   help="also check every head anchored in FILE is still part of the chain")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify)

    p = group.add_parser("anchor", help="verify, then append the signed head to a file elsewhere")
    p.add_argument("--to", metavar="FILE", required=True,
                   help="the anchor file (appended to; keep it on another disk or machine)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_anchor)

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


def _result_json(result: VerifyResult) -> dict[str, object]:
    return {"ok": result.ok, "rows": result.rows, "first_bad_id": result.first_bad_id,
            "reason": result.reason, "kind": result.kind, "last_hash": result.last_hash,
            "anchors_checked": result.anchors_checked, "notes": result.notes}


def _fail(log: AuditLog, result: VerifyResult) -> IntegrityError:
    return IntegrityError(
        f"audit log {log.path} failed verification ({result.kind}): {result.reason}",
        hint="it was changed outside Ferry: keep a copy of it and its key folder; report it",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    log = AuditLog()
    result = log.verify(anchors=Path(args.anchor) if args.anchor else None)
    if args.json:
        print_json(_result_json(result))
    if not result.ok:
        raise _fail(log, result)
    if not args.json:
        line = f"audit log OK: {result.rows} rows, chain intact, keyed head matches"
        if args.anchor:
            line += f", {result.anchors_checked} anchors in {args.anchor} are part of the chain"
        print(display_name(line))
        for note in result.notes:
            print(display_name(f"note: {note}"))
    return 0


def cmd_anchor(args: argparse.Namespace) -> int:
    log = AuditLog()
    result, line = log.anchor_line()
    if not result.ok:
        if args.json:
            print_json(_result_json(result))
        raise _fail(log, result)
    target = Path(args.to)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UsageError(f"cannot append to the anchor file {target}: {exc.strerror}",
                         hint="pass a writable file, e.g. on another mount") from None
    if args.json:
        print_json({**_result_json(result), "anchor": line.strip(), "to": str(target)})
    else:
        print(display_name(f"anchored row {result.rows} ({result.last_hash[:16]}…) to {target}"))
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
