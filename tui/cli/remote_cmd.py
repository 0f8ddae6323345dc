"""``ferry ls SITE:PATH``: list a remote folder (name, type, size, mtime, mode)."""

from __future__ import annotations

import argparse
import asyncio
import stat
import sys
import time

from backend import remote
from backend.errors import UsageError
from backend.names import display_name
from backend.units import human_size
from tui.cli.connect import sftp_for
from tui.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list a remote folder", description="List a remote folder.")
    p.add_argument("target", metavar="SITE:PATH", help="site name, optionally :PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-a", "--all", action="store_true", help="include hidden (dot) files")
    p.set_defaults(func=cmd_ls)


def split_target(target: str) -> tuple[str, str]:
    """``SITE:PATH`` or a bare ``SITE`` -> (site, path)."""
    parsed = remote.parse_remote_spec(target)
    if parsed is not None:
        return parsed
    if ":" not in target and "/" not in target:
        return target, ""
    raise UsageError(f"expected SITE:PATH, got {target!r}")


def mode_string(entry: remote.RemoteEntry) -> str:
    type_char = {"dir": "d", "link": "l", "file": "-", "other": "?"}[entry.kind]
    return type_char + stat.filemode(entry.mode)[1:]


def cmd_ls(args: argparse.Namespace) -> int:
    site_name, path = split_target(args.target)
    listing = asyncio.run(_list(site_name, path))
    entries = [e for e in listing.entries if args.all or not e.name.startswith(".")]
    if args.json:
        print_json(
            {
                "path": listing.path,
                "entries": [e.to_json() for e in entries],
                "rejected": listing.rejected,
            }
        )
    else:
        for e in entries:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime)) if e.mtime else "-"
            size = human_size(e.size) if e.kind == "file" else "-"
            name = display_name(e.name) + ("/" if e.kind == "dir" else "")
            if e.link_target:
                name += f" -> {e.link_target}"
            print(f"{mode_string(e)}  {size:>10}  {when}  {name}")
    for reason in listing.rejected:
        print(f"ferry: warning: skipped {reason}", file=sys.stderr)
    return 0


async def _list(site_name: str, path: str) -> remote.Listing:
    async with sftp_for(site_name) as (site, _conn, sftp):
        return await remote.list_dir(sftp, remote.resolve(site.remote_dir, path))
