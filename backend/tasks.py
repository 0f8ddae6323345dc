"""asyncio task helpers that keep cancellation honest.

``with contextlib.suppress(BaseException): await task`` (or ``suppress(CancelledError)``)
swallows the *caller's* cancellation too: a caller cancelled while it waits for the task would
carry on as if nothing happened. These helpers wait with :func:`asyncio.wait`, which never
raises the task's outcome but does raise the caller's own ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def ended(task: asyncio.Future[Any]) -> BaseException | None:
    """Wait until ``task`` has ended; returns its exception (None if it returned or was
    cancelled) instead of raising it. A cancelled caller stays cancelled."""
    if not task.done():
        await asyncio.wait([task])
    if task.cancelled():
        return None
    return task.exception()


async def cancel_and_wait(task: asyncio.Future[Any]) -> BaseException | None:
    """Cancel ``task`` and wait until it has ended (see :func:`ended`)."""
    task.cancel()
    return await ended(task)
