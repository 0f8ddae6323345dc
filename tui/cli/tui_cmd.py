"""``ferry`` with no command (and ``ferry demo``): open the terminal UI."""

from __future__ import annotations

import argparse
from typing import Any


def run_tui(site: str | None = None, demo: Any = None) -> bool:
    """Open the TUI, optionally on ``site``. Returns False when the TUI is not installed
    (Textual missing); any other import problem is a bug and propagates."""
    try:
        from tui.app import FerryApp
    except ModuleNotFoundError as exc:
        if exc.name not in ("textual", "rich"):
            raise
        return False
    from tui.terminal_guard import TerminalGuard

    app = FerryApp(start_site=site, demo=demo)
    guard = TerminalGuard(app).start()  # a dropped terminal: quit within a second
    try:
        app.run()
    finally:
        guard.stop()
    return True


def open_tui(args: argparse.Namespace) -> int:
    if not run_tui():
        from tui.cli import build_parser

        build_parser().print_help()
    return 0
