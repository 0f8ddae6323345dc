"""Keys are handled one after the other, each only after what the one before it set in motion.

Textual hands a key from the App's queue to the focused widget's queue and goes straight on to
the next key; the key then bubbles widget by widget (each hop another queue) until the App runs
its binding, and a focus change is applied later still (``Widget.focus`` defers through
``App.call_later``; a pushed screen focuses its first field when it has mounted). Keys that
arrive together — a laggy SSH link delivers several in one read — were therefore all given to
the widget that had the focus before the first of them: ``ab<Tab>cd`` typed ``abcd`` into one
field, Tab+Enter opened the folder in the pane just left, and after ``q`` a quick ``a`` began
opening a form on an app that was closing (issue 14, bugs 1 and 2).

:class:`KeyOrder` keeps the App's keys in order: while a key is *settling*, later keys are held
and replayed one by one. A key has settled when

1. every queue on its way up (focused widget, its ancestors, the screen, the App) has handled
   everything posted before it (one ``call_later`` round per hop, in order), and then
2. the active screen (a new one if the key opened a dialog) has mounted and, in a few rounds
   over all of its widgets and the App, handled what the key's handlers posted (messages such
   as ``DataTable.RowSelected``, deferred ``set_focus`` calls).

A key never waits more than :data:`HOLD_LIMIT` (a handler that waits for a dialog must not
stall the keyboard). Once the App is exiting, held keys are dropped. This is about ordering
only: with keys typed at human speed nothing is held for longer than these few rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from textual import events
from textual.dom import DOMNode

log = logging.getLogger("ferry.tui")

HOLD_LIMIT = 1.0  # seconds a key may keep the next one waiting
PASSES = 2  # rounds over the whole screen after the key's own way up
_POLL = 0.02  # how often a stuck round looks whether the screen changed


class KeyOrder:
    """Holds an App's keys while the previous one settles; ``handle`` processes one key.

    ``app`` is the App (its ``exiting`` attribute says it is closing)."""

    def __init__(self, app: Any, handle: Callable[[events.Key], Awaitable[None]]) -> None:
        self._app = app
        self._handle = handle
        self._held: deque[events.Key] = deque()
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    async def key(self, event: events.Key) -> None:
        """A key from the terminal: handled now, or held until the keys before it settled."""
        if self._app.exiting:
            return  # quitting: a key typed after q must not start anything
        if self._busy:
            self._held.append(event)
            return
        await self._process(event)

    async def _process(self, event: events.Key) -> None:
        self._busy = True
        start = self._app.focused or self._app.screen
        path = list(start.ancestors_with_self)
        screen = self._app.screen
        try:
            await self._handle(event)
        finally:
            self._task = asyncio.create_task(self._settle(path, screen))

    def stop(self) -> None:
        """The App is closing: forget held keys, stop waiting."""
        self._held.clear()
        if self._task is not None:
            self._task.cancel()

    async def _settle(self, path: list[DOMNode], screen: Any) -> None:
        deadline = time.monotonic() + HOLD_LIMIT
        try:
            for node in path:  # the key's own way up, hop by hop
                if not await self._rounds([node], screen, deadline):
                    break
            for _ in range(PASSES):  # what its handlers posted, wherever it went
                current = await self._mounted_screen(deadline)
                if current is None:
                    break
                nodes = [self._app, *current.walk_children(with_self=True)]
                if not await self._rounds(nodes, None, deadline):
                    break
        finally:
            if not self._app.call_later(self._release):
                self._held.clear()

    async def _rounds(self, nodes: list[Any], screen: Any, deadline: float) -> bool:
        """One ``call_later`` round through each of ``nodes``; False when it took too long or
        the active screen stopped being ``screen`` (a dialog opened: go on with that one)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for node in nodes:
            future: asyncio.Future[None] = loop.create_future()
            if node.call_later(_resolve, future):
                futures.append(future)
        pending: set[asyncio.Future[None]] = set(futures)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                log.debug("key order: a key took over %.1f s to settle", HOLD_LIMIT)
                return False
            _done, pending = await asyncio.wait(pending, timeout=min(left, _POLL))
            if pending and screen is not None and self._active_screen() is not screen:
                return True
        return True

    def _active_screen(self) -> Any:
        with contextlib.suppress(Exception):  # no screen while the App starts or stops
            return self._app.screen
        return None

    async def _mounted_screen(self, deadline: float) -> Any:
        while time.monotonic() < deadline:
            screen = self._active_screen()
            if screen is not None and screen.is_mounted:
                return screen
            await asyncio.sleep(_POLL / 4)
        return None

    async def _release(self) -> None:
        self._busy = False
        self._task = None
        if self._app.exiting:
            self._held.clear()
            return
        if self._held:
            await self._process(self._held.popleft())


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
