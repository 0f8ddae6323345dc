"""``ferry sites trust``, ``show`` and ``test``: the site commands that open an SSH session.

``test`` (and ``show --detect``) detect the server profile and remember it, through the same
backend call as the TUI's Test dialog (:func:`backend.sites.profile.redetect`).
"""

from __future__ import annotations

import argparse
import asyncio

from backend import hostkeys, ssh
from backend.errors import CancelledByUser, HostKeyChangedError, HostKeyUnknownError, UsageError
from backend.sites import profile as server_profile
from backend.sites.model import Site
from backend.sites.store import SiteStore
from tui.cli.connect import connect_site
from tui.cli.output import ask_choice, info, is_interactive, print_json


def register_site_commands(sites_sub: argparse._SubParsersAction) -> None:
    """Add ``trust``, ``show`` and ``test`` to the ``ferry sites`` group."""
    p = sites_sub.add_parser(
        "trust",
        help="connect, show the host key and pin it",
        description="Connect, show the server's host key and pin it for the site. Without a "
        "terminal it pins only when --fingerprint matches the key the server presents.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="expected key fingerprint")
    p.set_defaults(func=cmd_trust)

    p = sites_sub.add_parser(
        "show",
        help="show a site and the algorithms a test connection negotiates",
        description="Show a site's settings (never secrets) and, after a test connection, "
        "the negotiated key exchange, cipher and MAC.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--no-connect", action="store_true", help="do not open a test connection")
    p.add_argument("--detect", action="store_true",
                   help="detect the server profile again (as 'ferry sites test' does)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sites_sub.add_parser(
        "test",
        help="connect and detect what the server can do (the server profile)",
        description="Connect, probe the server in a scratch folder .ferry-probe-* under the "
        "site's remote folder (removed afterwards) and remember what it can do: exec, "
        "renames, append, out-of-order writes, fsync, setstat, limits... Transfers use it.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_test)


def cmd_trust(args: argparse.Namespace) -> int:
    store = SiteStore()
    site = store.get(args.name)
    shown = asyncio.run(ssh.fetch_host_key(site, lookup=store.get))
    old = [hostkeys.fingerprint_of_line(line) for line in site.host_keys]
    if shown.fingerprint in old:
        print(f"{site.name}: host key {shown.key_type} {shown.fingerprint} is already pinned")
        return 0
    if args.fingerprint:
        expected = hostkeys.normalize_fingerprint(args.fingerprint)
        if hostkeys.normalize_fingerprint(shown.fingerprint) != expected:
            raise HostKeyChangedError(
                f"{site.name} presents {shown.key_type} {shown.fingerprint}, not {expected}: "
                "not pinned. Someone may be intercepting the connection",
                old_fingerprints=[expected],
                new_fingerprint=shown.fingerprint,
                key_type=shown.key_type,
            )
    elif not is_interactive():
        raise HostKeyUnknownError(
            f"{site.name} presents {shown.key_type} {shown.fingerprint}; not pinned without "
            "confirmation",
            fingerprint=shown.fingerprint,
            key_type=shown.key_type,
            hint=f"verify it, then: ferry sites trust {site.name} --fingerprint "
            f"{shown.fingerprint}",
        )
    else:
        if old:
            info(
                f"WARNING: {site.name} has pinned key(s) {', '.join(old)} but now presents a "
                "different key. Accept only if the server's admin confirmed the change."
            )
        info(f"{site.name} ({site.host}:{site.port}) presents {shown.key_type} {shown.fingerprint}")
        if ask_choice("Pin this key?", {"a": "accept", "c": "cancel"}, default="c") != "a":
            raise CancelledByUser("host key not pinned")
    store.replace_host_keys(site.name, [shown.line])
    print(f"{site.name}: pinned {shown.key_type} {shown.fingerprint}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = SiteStore()
    site = store.get(args.name)
    details: dict[str, object] = {
        "name": site.name,
        "address": site.address,
        "auth": site.auth,
        "key_file": site.key_file,
        "cipher_profile": site.cipher_profile,
        "layout": site.layout,
        "remote_dir": site.remote_dir or "(login folder)",
        "jump": site.jump,
        "keepalive": site.keepalive,
        "upload_mode": site.upload_mode,
        "max_parallel": site.max_parallel,
        "encrypt_at_rest": site.encrypt_at_rest,
        "require_deidentified": site.require_deidentified,
        "pinned_host_keys": [hostkeys.fingerprint_of_line(k) for k in site.host_keys],
        "last_connected": site.last_connected,
    }
    if args.detect and args.no_connect:
        raise UsageError("--detect needs a connection: drop --no-connect")
    if not args.no_connect:
        details["negotiated"] = asyncio.run(_negotiate(site.name, store, detect=args.detect))
        site = store.get(site.name)  # a host key may have been pinned meanwhile
    if args.json:
        details["server_profile"] = site.server_profile
        details["profile"] = server_profile.report_json(site)
        print_json(details)
        return 0
    for key, value in details.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:<26} {v}")
        elif isinstance(value, list):
            print(f"{key}: {', '.join(value) if value else '(none)'}")
        else:
            print(f"{key}: {'' if value is None else value}")
    _print_profile(site)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    store = SiteStore()
    site = store.get(args.name)
    asyncio.run(_negotiate(site.name, store, detect=True))
    site = store.get(site.name)
    if args.json:
        print_json({"name": site.name, "address": site.address,
                    "profile": server_profile.report_json(site)})
        return 0
    print(f"{site.name}: connected to {site.address}")
    _print_profile(site)
    return 0


def _print_profile(site: Site) -> None:
    for line in server_profile.report_lines(site):
        print(line)


async def _negotiate(name: str, store: SiteStore, *, detect: bool = False) -> dict[str, str]:
    site, conn = await connect_site(name, store)
    try:
        found = ssh.negotiated(conn)
        if detect:
            await server_profile.redetect(conn, site)
        return found
    finally:
        conn.close()
