"""Wrong-password lockouts, per link and per client key, all decaying.

Five failures are free; from then on every further failure locks the key out for a growing
time (30 s, 60 s, 120 s ... capped at one hour). A locked key is answered 429 with Retry-After
before the password is even checked. A correct password resets the link's counter, and every
counter is forgotten after a quiet period (:data:`QUIET_SECONDS` after its last lock ended or
its last failure), so old junk cannot keep anyone out.

Per-link state is persisted by the service (recipients table, counted before the check: see
``backend/shares/store.py``); per-client state lives here, in memory, keyed by the caller:
wrong passwords on ``(address, link)`` and unknown links on the address alone (docs/sharing.md
"Lockouts"), so a reverse proxy's one address cannot lock every recipient out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

FREE_TRIES = 5
BASE_LOCK_SECONDS = 30.0
MAX_LOCK_SECONDS = 3600.0
QUIET_SECONDS = 3600.0
MAX_ENTRIES = 100_000


def lock_seconds(failures: int) -> float:
    """Lockout after the ``failures``-th consecutive failure (0 while under the free tries)."""
    if failures < FREE_TRIES:
        return 0.0
    doubling: int = 2 ** min(failures - FREE_TRIES, 32)
    return min(MAX_LOCK_SECONDS, BASE_LOCK_SECONDS * doubling)


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0

    def forget_at(self, quiet: float) -> float:
        return max(self.locked_until, self.last) + quiet


class AddressLimiter:
    """In-memory failure counters per key; a counter is forgotten after ``quiet`` seconds
    without failures once its lock has ended. At most :data:`MAX_ENTRIES` keys are kept (the
    oldest are dropped first)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 quiet: float = QUIET_SECONDS) -> None:
        self._clock = clock
        self.quiet = quiet
        self._entries: dict[Hashable, _Entry] = {}

    def _get(self, key: Hashable, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now >= entry.forget_at(self.quiet):
            del self._entries[key]
            return None
        return entry

    def retry_after(self, key: Hashable) -> float:
        entry = self._get(key, self._clock())
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock())

    def failure(self, key: Hashable) -> float:
        now = self._clock()
        entry = self._get(key, now)
        if entry is None:
            self._gc(now)
            entry = self._entries[key] = _Entry()
        entry.failures += 1
        entry.last = now
        wait = lock_seconds(entry.failures)
        if wait:
            entry.locked_until = now + wait
        return wait

    def _gc(self, now: float) -> None:
        if len(self._entries) < MAX_ENTRIES:
            return
        for key in [k for k, e in self._entries.items() if now >= e.forget_at(self.quiet)]:
            del self._entries[key]
        while len(self._entries) >= MAX_ENTRIES:  # still full: drop the oldest
            del self._entries[next(iter(self._entries))]
