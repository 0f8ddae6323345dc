"""``ferry`` with no command: open the TUI."""

from __future__ import annotations

import argparse


def open_tui(args: argparse.Namespace) -> int:
    from tui.cli import build_parser

    build_parser().print_help()
    return 0
