"""Messages that carry events up the TUI's layers: transfer-engine events into widgets, and
what a dialog did that the app must act on (the dialogs never import the screens: the import
contracts in pyproject.toml).

Progress arrives many times a second per job; :class:`TransferProgress` overrides
``can_replace`` so a widget's queue holds only the latest progress of each job (toolong's
trick), and the widgets redraw on their own timer at most ~10 times a second.
"""

from __future__ import annotations

from textual.message import Message

from backend.transfers.model import TransferEvent


class TransferProgress(Message):
    """Byte counts of one job moved on. Only the newest per job is kept in a queue."""

    def __init__(self, event: TransferEvent) -> None:
        super().__init__()
        self.event = event

    @property
    def job_id(self) -> int:
        return self.event.job_id

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TransferProgress) and message.job_id == self.job_id


class TransferChanged(Message):
    """A job was added, changed state, or was reordered (never dropped)."""

    def __init__(self, event: TransferEvent | None) -> None:
        super().__init__()
        self.event = event


class ShareCreated(Message):
    """The Share… dialog created a share: the app starts the download notices (once) and
    refreshes every Shares screen on the stack (tui/app.py)."""
