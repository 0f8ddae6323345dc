"""``ferry`` with no command (and ``ferry demo``): open the terminal UI."""

from __future__ import annotations

import argparse
from typing import Any


def run_tui(site: str | None = None, demo: Any = None, *, no_agent: bool = False) -> Any:
    """Open the TUI, optionally on ``site``; the app once it exited (its ``exit_note`` has
    been printed: transfers it left running in the agent). None when the TUI is not installed
    (Textual missing); any other import problem is a bug and propagates."""
    try:
        from tui.app import FerryApp
    except ModuleNotFoundError as exc:
        if exc.name not in ("textual", "rich"):
            raise
        return None
    from tui.terminal_guard import TerminalGuard

    app = FerryApp(start_site=site, demo=demo, use_agent=False if no_agent else None)
    guard = TerminalGuard(app).start()  # a dropped terminal: quit within a second
    try:
        app.run()
    finally:
        guard.stop()
    if app.exit_note:
        print(f"ferry: {app.exit_note}", flush=True)
    return app


def open_tui(args: argparse.Namespace) -> int:
    if run_tui(no_agent=bool(getattr(args, "tui_no_agent", False))) is None:
        from tui.cli import build_parser

        build_parser().print_help()
    return 0
