"""``ferry demo``: the embedded demo server with sample cases, and Ferry opened on it."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo SFTP server with sample cases and open Ferry on it",
        description="Start an SFTP server on 127.0.0.1 (free port) with sample cases in both "
        "provider layouts, register the sites 'demo' and 'demo-ai' with the host key pinned, "
        "and open Ferry on them.",
    )
    p.add_argument(
        "--serve-only",
        action="store_true",
        help="do not open the TUI; keep serving and print host, port, user and key path",
    )
    p.add_argument(
        "--large-file-mib", type=int, default=64, metavar="N",
        help="size of the large sample file (default 64)",
    )
    p.add_argument(
        "--no-agent", action="store_true",
        help="run the TUI's transfers in its own process instead of in the Ferry agent",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.demo.runner import DEMO_SITES, DEMO_USER, DemoServer  # ~20 ms: only here

    demo = DemoServer.start(large_file_mib=max(1, args.large_file_mib))
    try:
        if not args.serve_only:
            from tui.cli.tui_cmd import run_tui

            app = run_tui(site="demo", demo=demo, no_agent=args.no_agent)
            if app is not None:
                serve_while_agent_runs(app, list(DEMO_SITES))
                return 0
        print(
            f"host: {demo.host}\nport: {demo.port}\nuser: {DEMO_USER}\n"
            f"key: {demo.client_key_path}\nroot: {demo.root}\n"
            f"sites: {', '.join(DEMO_SITES)}\n"
            f"share service: {demo.share_url}\n"
            "try:   ferry ls demo:From_IDT    ferry get -r demo:From_IDT/CASE-20261118-0031 .\n"
            "       ferry case list demo-ai\n"
            "       ferry share create demo:From_IDT/README-from-provider.txt --generate-password\n"
            "Serving until Ctrl-C.",
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        demo.stop()


def serve_while_agent_runs(app: object, sites: tuple[str, ...] | list[str]) -> None:
    """Transfers the TUI left to the agent on the demo's sites need this server: keep serving
    until they end (Ctrl-C stops serving; they then wait, resumable, for the next demo)."""
    left = [j.id for j in getattr(app, "left_running", []) if j.site in sites]
    if not left:
        return
    print(f"ferry demo: the demo server keeps serving until the {len(left)} transfer(s) on "
          f"{', '.join(sites)} finish in the Ferry agent; Ctrl-C stops it (they then resume "
          "at the next 'ferry demo')", flush=True)
    try:
        asyncio.run(_wait_for(left))
    except KeyboardInterrupt:
        return
    print("ferry demo: the transfers ended; see 'ferry queue list'", flush=True)


async def _wait_for(jobs: list[int]) -> None:
    from backend.agent import client as agent
    from backend.errors import FerryError

    try:
        client = await agent.connect(start=False, client="demo")
    except FerryError:
        return
    try:
        for job in jobs:
            try:
                await client.call("wait", job=job)
            except FerryError:
                return
    finally:
        await client.close()
