"""``ferry demo``: the embedded demo server with sample cases, and Ferry opened on it."""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.demo.runner import DEMO_SITES, DEMO_USER, DemoServer  # ~20 ms: only here

    demo = DemoServer.start(large_file_mib=max(1, args.large_file_mib))
    try:
        if not args.serve_only:
            from tui.cli.tui_cmd import run_tui

            if run_tui(site="demo", demo=demo):
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
