"""Ferry's screens, one module each; shared bits every screen composes.

:func:`status_bar` is the one-line queue summary docked at the bottom of every screen: part B's
``tui.widgets.queue_panel.QueueSummary`` when it is installed, else an empty line.
"""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Static


def status_bar() -> Widget:
    """The queue summary line (``#status-bar``)."""
    try:
        from tui.widgets.queue_panel import QueueSummary  # type: ignore[import-not-found]
    except ImportError:
        return Static("", id="status-bar")
    return QueueSummary(id="status-bar")
