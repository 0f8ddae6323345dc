"""Who listens to an engine's transfer events: the one subscribe/emit of the in-process
engine (backend/transfers/engine.py) and of the agent's engine as a client sees it
(backend/agent/remote.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from backend.transfers.model import TransferEvent

log = logging.getLogger("ferry.transfers")

Callback = Callable[[TransferEvent], None]


class Subscribers:
    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    def add(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` for every event from now on; returns the unsubscribe."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def emit(self, event: TransferEvent) -> None:
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop transfers or the others
                log.exception("transfer event subscriber failed")
