"""``ferry sites trust`` and ``ferry sites show``: the site commands that open an SSH session."""

from __future__ import annotations

import argparse


def register_site_commands(sites_sub: argparse._SubParsersAction) -> None:
    """Add ``trust`` and ``show`` to the ``ferry sites`` group."""
