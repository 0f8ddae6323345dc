"""``ferry mkdir``, ``ferry rm``, ``ferry rename`` and ``ferry mv``: the browser's file
operations on site paths, through the same backend code the TUI uses.

* ``mkdir SITE:PATH [-p]``: :func:`backend.remote.mkdir` (``-p``: :func:`~backend.remote.makedirs`);
* ``rm SITE:PATH... [-r] [--yes]``: lists what :func:`~backend.remote.plan_delete` finds, asks
  (or needs ``--yes``; without a terminal and without ``--yes`` nothing is deleted: exit 2),
  then :func:`~backend.remote.delete`;
* ``rename SITE:PATH NEWNAME``: :func:`~backend.remote.rename` within the folder, never
  replacing;
* ``mv SRC DST``: a site path to or from this machine, or between sites. Within one site a
  server-side rename when the server allows it; otherwise a durable move job
  (backend/transfers/moves.py; between sites backend/relay.py), run here like ``ferry get``
  and completed by ``ferry queue resume`` if this process is interrupted. An existing
  destination is refused (exit 3) before anything moves.

Exit codes are the table in docs/cli.md; server text is printed through
:func:`backend.names.display_name`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
import humanize

from backend import remote
from backend.agent.remote import AgentEngine
from backend.errors import (
    CancelledByUser,
    ConfigError,
    PermissionDeniedError,
    RemoteNotFoundError,
    TransferError,
    UsageError,
)
from backend.names import display_name
from backend.relay import RelaySpec, follows, same_relay, submit_relay
from backend.sites.store import SiteStore
from backend.transfers import JobSpec, Journal
from backend.transfers import moves as move_jobs
from backend.transfers.model import VERIFY_MODES
from tui.cli.agent_client import wanted
from tui.cli.connect import sftp_for
from tui.cli.output import ask_choice, info, is_interactive, print_json
from tui.cli.transfer_cmd import _drive

if TYPE_CHECKING:
    from tui.cli.transfer_cmd import Engine

SHOWN = 20  # paths listed before a delete (then "... and N more")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mkdir", help="create a folder on a site",
                       description="Create a folder on a site.")
    p.add_argument("target", metavar="SITE:PATH")
    p.add_argument("-p", "--parents", action="store_true",
                   help="create missing parent folders; an existing folder is not an error")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_mkdir)

    p = sub.add_parser("rm", help="delete files or folders on a site",
                       description="Delete files or folders on a site (lists them, then asks).")
    p.add_argument("targets", nargs="+", metavar="SITE:PATH")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="delete folders and everything in them")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask (needed without a terminal)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("rename", help="rename a file or folder within its folder",
                       description="Rename a file or folder on a site, within its folder. "
                                   "An existing name is never replaced.")
    p.add_argument("target", metavar="SITE:PATH")
    p.add_argument("newname", metavar="NEWNAME")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser(
        "mv", help="move files or folders to, from or between sites",
        description="Move SRC to DST (SITE:PATH or a local path; not both local). Within one "
                    "site: a server-side rename when possible. Otherwise the files are copied "
                    "and verified, and each original is deleted only after its copy is "
                    "verified (resumable: 'ferry queue resume'). An existing DST folder "
                    "receives SRC inside it; an existing DST file is refused.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    p.add_argument("--verify", choices=VERIFY_MODES, default="sha256",
                   help="check each copy before deleting its original (default: sha256; "
                        "with none every original is kept)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-agent", action="store_true",
                   help="move in this process (it stops with it) instead of in the Ferry agent")
    p.set_defaults(func=cmd_mv)


# -- helpers ------------------------------------------------------------------------------------


def site_path(target: str, what: str = "SITE:PATH") -> tuple[str, str]:
    """``SITE:PATH`` with a non-empty PATH -> (site, path)."""
    parsed = remote.parse_remote_spec(target)
    if parsed is None or not parsed[1].strip():
        raise UsageError(f"expected {what}, got {target!r}")
    return parsed


def _shown(site: str, path: str) -> str:
    return f"{site}:{display_name(path)}"


# -- mkdir --------------------------------------------------------------------------------------


def cmd_mkdir(args: argparse.Namespace) -> int:
    site_name, path = site_path(args.target)

    async def run() -> tuple[str, list[str]]:
        async with sftp_for(site_name) as (site, _conn, sftp):
            full = remote.resolve(site.remote_dir, path)
            if args.parents:
                return full, await remote.makedirs(sftp, full)
            parent, name = posixpath.split(full.rstrip("/"))
            try:
                return full, [await remote.mkdir(sftp, parent or "/", name)]
            except RemoteNotFoundError:
                raise RemoteNotFoundError(
                    f"no such folder: {display_name(parent)}",
                    hint="-p creates missing parent folders") from None

    full, created = asyncio.run(run())
    if args.json:
        print_json({"site": site_name, "path": full, "created": created})
    elif created:
        for folder in created:
            print(f"created {_shown(site_name, folder)}/")
    else:
        print(f"{_shown(site_name, full)}/ exists already")
    return 0


# -- rm -----------------------------------------------------------------------------------------


def _plan_lines(items: list[remote.WalkItem]) -> list[str]:
    files = sum(1 for i in items if i.entry.kind != "dir")
    size = sum(i.entry.size for i in items if i.entry.kind == "file")
    lines = [f"{files} file(s) and {len(items) - files} folder(s), "
             f"{humanize.naturalsize(size, binary=True)} in total:"]
    for item in items[:SHOWN]:
        lines.append(f"  {display_name(item.relpath)}{'/' if item.entry.kind == 'dir' else ''}")
    if len(items) > SHOWN:
        lines.append(f"  ... and {len(items) - SHOWN} more")
    return lines


def cmd_rm(args: argparse.Namespace) -> int:
    targets = [site_path(t) for t in args.targets]
    site_name = targets[0][0]
    if any(s != site_name for s, _ in targets):
        raise UsageError("all paths of one ferry rm must be on the same site")

    async def run() -> list[tuple[str, int]]:
        async with sftp_for(site_name) as (site, _conn, sftp):
            paths = [remote.resolve(site.remote_dir, p) for _, p in targets]
            items: list[remote.WalkItem] = []
            for path in paths:
                if path in ("/", ".", posixpath.normpath(site.remote_dir or "/")):
                    raise UsageError(f"refusing to delete {_shown(site_name, path)}: it is the "
                                     "site's top folder; name what is inside it")
                planned = await remote.plan_delete(sftp, path)
                if planned[0].entry.kind == "dir" and not args.recursive:
                    raise UsageError(f"{_shown(site_name, path)} is a folder",
                                     hint="add -r to delete it and everything in it")
                items.extend(planned)
            where = ", ".join(_shown(site_name, p) for p in paths)
            if not args.yes:
                info(f"ferry rm: this would be deleted in {where}:")
                for line in _plan_lines(items):
                    info(line)
                if not is_interactive():
                    raise UsageError("nothing deleted: ferry rm asks before deleting",
                                     hint="add --yes to delete without asking")
                answer = ask_choice("Delete all of this? It cannot be undone.",
                                    {"y": "delete", "n": "keep everything"}, default="n")
                if answer != "y":
                    raise CancelledByUser("nothing deleted")
            return [(path, await remote.delete(sftp, path)) for path in paths]

    deleted = asyncio.run(run())
    total = sum(n for _, n in deleted)
    if args.json:
        print_json({"site": site_name, "deleted": [{"path": p, "entries": n} for p, n in deleted],
                    "count": total})
    else:
        for path, n in deleted:
            print(f"deleted {_shown(site_name, path)} ({n} item(s))")
    return 0


# -- rename -------------------------------------------------------------------------------------


def cmd_rename(args: argparse.Namespace) -> int:
    site_name, path = site_path(args.target)
    new = args.newname
    if "/" in new:
        raise UsageError(f"{new!r} is a path: NEWNAME is a name in the same folder",
                         hint="to move it elsewhere use 'ferry mv'")

    async def run() -> tuple[str, str]:
        async with sftp_for(site_name) as (site, _conn, sftp):
            full = remote.resolve(site.remote_dir, path)
            parent, old = posixpath.split(full.rstrip("/"))
            return full, await remote.rename(sftp, parent or "/", old, new)

    old, renamed = asyncio.run(run())
    if args.json:
        print_json({"site": site_name, "from": old, "to": renamed})
    else:
        print(f"renamed {_shown(site_name, old)} -> {display_name(renamed)}")
    return 0


# -- mv -----------------------------------------------------------------------------------------


def cmd_mv(args: argparse.Namespace) -> int:
    src = remote.parse_remote_spec(args.source)
    dst = remote.parse_remote_spec(args.destination)
    if src is None and dst is None:
        raise UsageError("both SRC and DST are local paths: use your shell's mv")
    for parsed, given in ((src, args.source), (dst, args.destination)):
        if parsed is not None and not parsed[1].strip():
            raise UsageError(f"expected SITE:PATH, got {given!r}")
    if src is not None and dst is not None:
        return _mv_between_sites(args, src, dst)
    if src is not None:
        return _mv_get(args, src, args.destination)
    assert dst is not None
    return _mv_put(args, args.source, dst)


def _local_target(source_name: str, destination: str) -> Path:
    """Where a move lands locally (``cp`` rules, as the planner applies them)."""
    dest = Path(os.path.abspath(os.path.expanduser(destination)))
    if dest.is_dir() or destination.endswith("/"):
        return dest / source_name
    if not dest.parent.is_dir():
        raise RemoteNotFoundError(f"no such local folder: {dest.parent}")
    return dest


async def _remote_target(sftp: asyncssh.SFTPClient, source_name: str, destination: str) -> str:
    """Where a move lands on a site (an existing folder receives it inside)."""
    try:
        attrs = await sftp.stat(destination)
    except asyncssh.SFTPNoSuchFile:  # the move is *to* that name
        if destination.endswith("/"):
            raise RemoteNotFoundError(f"no such folder: {display_name(destination)}") from None
        return destination
    except asyncssh.Error as exc:
        raise remote.translate_sftp_error(exc, destination) from None
    if stat.S_ISDIR(attrs.permissions or 0):
        return posixpath.join(destination, source_name)
    return destination


def _refuse_existing(shown: str) -> None:
    raise ConfigError(f"{shown} already exists; nothing was moved",
                      hint="choose another destination, or remove it first")


def _run_move(spec: JobSpec, args: argparse.Namespace) -> int:
    async def submit(engine: Engine) -> list[int]:
        return [await engine.adopt(spec)]

    return _drive(submit, args.json, run_all_jobs=False, agent=wanted(args), sites={spec.site})


def _mv_get(args: argparse.Namespace, src: tuple[str, str], local: str) -> int:
    site_name, path = src
    site = SiteStore().get(site_name)
    spec = JobSpec("get", site_name, [path], local, recursive=True, verify=args.verify,
                   tag=move_jobs.TAG)
    if Journal().find_unfinished(spec) is None:  # an interrupted identical move: resume it
        name = posixpath.basename(remote.resolve(site.remote_dir, path).rstrip("/"))
        target = _local_target(name, local)
        if os.path.lexists(target):
            _refuse_existing(str(target))

        async def exists() -> None:
            async with sftp_for(site_name) as (s, _conn, sftp):
                await remote.stat_path(sftp, remote.resolve(s.remote_dir, path))

        asyncio.run(exists())
    return _run_move(spec, args)


def _mv_put(args: argparse.Namespace, local: str, dst: tuple[str, str]) -> int:
    site_name, path = dst
    source = Path(os.path.abspath(os.path.expanduser(local)))
    if not os.path.lexists(source):
        raise RemoteNotFoundError(f"no such file or folder: {local}")
    spec = JobSpec("put", site_name, [local], path, recursive=True, verify=args.verify,
                   tag=move_jobs.TAG)
    if Journal().find_unfinished(spec) is None:
        async def check() -> None:
            async with sftp_for(site_name) as (site, _conn, sftp):
                target = await _remote_target(sftp, source.name,
                                              remote.resolve(site.remote_dir, path))
                if await remote.exists(sftp, target):
                    _refuse_existing(_shown(site_name, target))

        asyncio.run(check())
    return _run_move(spec, args)


def _mv_between_sites(args: argparse.Namespace, src: tuple[str, str],
                      dst: tuple[str, str]) -> int:
    (a, a_path), (b, b_path) = src, dst
    store = SiteStore()
    store.get(a), store.get(b)  # unknown sites: exit 3 before connecting

    async def plan() -> tuple[str, str, bool, bool]:
        """(source path, destination, inside, renamed on the server)."""
        async with sftp_for(a) as (site_a, _conn, sftp_a):
            source = remote.resolve(site_a.remote_dir, a_path)
            await remote.stat_path(sftp_a, source)  # exit 9 when it does not exist
            name = posixpath.basename(source.rstrip("/"))
            if a == b:
                target = await _remote_target(sftp_a, name,
                                              remote.resolve(site_a.remote_dir, b_path))
                if target == source:
                    raise UsageError(f"{_shown(a, source)} is already there")
                if target.startswith(source.rstrip("/") + "/"):
                    raise UsageError(f"cannot move {_shown(a, source)} into itself")
                try:
                    await remote.move_by_rename(sftp_a, source, target)
                except (PermissionDeniedError, TransferError) as exc:
                    info(f"ferry: the server refused a rename ({exc.message}); moving by copy, "
                         "verify and delete instead")
                else:
                    return source, target, False, True
                return source, *_split_target(target, name), False
        async with sftp_for(b) as (site_b, _conn, sftp_b):
            target = await _remote_target(sftp_b, name, remote.resolve(site_b.remote_dir, b_path))
            if await remote.exists(sftp_b, target):
                _refuse_existing(_shown(b, target))
        return source, *_split_target(target, name), False

    source, destination, inside, renamed = asyncio.run(plan())
    if renamed:
        if args.json:
            print_json({"kind": "move", "method": "rename", "site": a, "from": source,
                        "to": destination, "complete": True})
        else:
            print(f"moved {_shown(a, source)} -> {_shown(a, destination)} (renamed on the server)")
        return 0
    spec = RelaySpec(a, [source], b, destination, recursive=True, verify=args.verify,
                     inside=inside)

    async def submit(engine: Engine) -> list[int]:
        pending = _pending_relay(engine, spec)
        if pending:
            for job_id in pending:
                if not isinstance(engine, AgentEngine) or engine.job(job_id).state == "paused":
                    await engine.resume(job_id)  # the agent runs every other unfinished job
            return pending
        return [await submit_relay(engine, spec, move=True)]

    return _drive(submit, args.json, run_all_jobs=False, agent=wanted(args), sites={a, b})


def _split_target(target: str, name: str) -> tuple[str, bool]:
    """A relay's (destination, inside) for landing at ``target``."""
    parent, last = posixpath.split(target)
    return (parent or "/", True) if last == name else (target, False)


def _pending_relay(engine: Engine, spec: RelaySpec) -> list[int]:
    """Unfinished legs of an identical earlier ``ferry mv`` (interrupted): resume those."""
    out = []
    for job in engine.journal.job_rows(unfinished_only=True):
        # the agent's own jobs are this command's to follow when it runs through the agent
        if engine.journal.owned_by_other(job, engine.me) and not isinstance(engine, AgentEngine):
            continue
        origin = follows(job)
        first = engine.journal.job(origin) if origin is not None else job
        if first.spec.tag and same_relay(first.spec, spec, move=True):
            out.append(job.id)
    return out

