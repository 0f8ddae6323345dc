"""Byte counts for people: the one size formatter of the CLI, the TUI and the share pages.

``human_size(n)``: binary units with one decimal, as humanize writes them (``1 Byte``,
``512 Bytes``, ``1.5 KiB``, ``3.2 GiB``, ``2.0 TiB``): listings, the queue, share pages, error
messages. ``human_size(n, compact=True)``: at most 6 cells for a table column and short notes
(``999B``, ``12.4K``, ``123K``, ``1.2G``), as the file panes show sizes.
"""

from __future__ import annotations

import humanize

_COMPACT_UNITS = ("B", "K", "M", "G", "T", "P")


def human_size(n: int, *, compact: bool = False) -> str:
    """``n`` bytes in binary (1024-based) units; see the module docstring for the two styles."""
    if not compact:
        return humanize.naturalsize(n, binary=True, format="%.1f")
    value = float(n)
    for unit in _COMPACT_UNITS:
        if value < 1000 or unit == _COMPACT_UNITS[-1]:
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
        value /= 1024
    raise AssertionError("unreachable: the loop returns at its last unit")
