"""Wrong-password lockouts, per link and per client address.

Five failures are free; from then on every further failure locks the key out for a growing
time (30 s, 60 s, 120 s ... capped at one hour). A locked key is answered 429 with Retry-After
before the password is even checked. A correct password resets the link's counter.
Per-link state is persisted by the service (recipients table); per-address state lives here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

FREE_TRIES = 5
BASE_LOCK_SECONDS = 30.0
MAX_LOCK_SECONDS = 3600.0


def lock_seconds(failures: int) -> float:
    """Lockout after the ``failures``-th consecutive failure (0 while under the free tries)."""
    if failures < FREE_TRIES:
        return 0.0
    return min(MAX_LOCK_SECONDS, BASE_LOCK_SECONDS * 2 ** (failures - FREE_TRIES))


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class AddressLimiter:
    """In-memory failure counter per client address; entries idle for a day are forgotten."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def retry_after(self, address: str) -> float:
        entry = self._entries.get(address)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock())

    def failure(self, address: str) -> float:
        now = self._clock()
        self._gc(now)
        entry = self._entries.setdefault(address, _Entry())
        entry.failures += 1
        entry.last = now
        wait = lock_seconds(entry.failures)
        if wait:
            entry.locked_until = now + wait
        return wait

    def _gc(self, now: float) -> None:
        if len(self._entries) < 10000:
            return
        for key in [k for k, e in self._entries.items() if now - e.last > 86400]:
            del self._entries[key]
