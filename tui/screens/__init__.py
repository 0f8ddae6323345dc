"""Ferry's screens, one module each; shared bits every screen composes.

:func:`status_bar` is the one-line queue summary docked at the bottom of every screen
(:class:`tui.widgets.queue_panel.QueueSummary`).
"""

from __future__ import annotations

from textual.widget import Widget

from tui.widgets.queue_panel import QueueSummary


def status_bar() -> Widget:
    """The queue summary line (``#status-bar``)."""
    return QueueSummary(id="status-bar")
