"""Aggregated audit rows for refused requests (locked out, unknown link, too many connections).

A client hammering the service must not write one fsynced audit row per request
(docs/security.md "Audit trail"). The first refusal of a kind from an address in a minute is
written at once (so ``ferry share events`` shows it immediately); the rest of that minute is
counted and written as ONE row with ``count`` when the minute ends (:meth:`flush`, called by
the service's background task and on stop). So one address produces at most two rows per kind
per minute, whatever its request rate. At most :data:`MAX_KEYS` (kind, address, share) keys
are held per minute; beyond that refusals are counted under the address ``"(other)"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WINDOW_SECONDS = 60.0
MAX_KEYS = 10_000

Key = tuple[str, str, str]  # (event, address, share or "")


@dataclass
class _Bucket:
    first: float
    extra: int = 0  # refusals after the first one (not yet written)
    fields: dict[str, Any] = field(default_factory=dict)


class RefusalAggregator:
    """Counts refusals per (event, address, share) and minute; ``write(event, fields)``
    appends one audit row (the service's audit wrapper)."""

    def __init__(self, write: Callable[[str, dict[str, Any]], None],
                 clock: Callable[[], float] = time.time,
                 window: float = WINDOW_SECONDS) -> None:
        self._write = write
        self._clock = clock
        self.window = window
        self._buckets: dict[Key, _Bucket] = {}

    def refused(self, event: str, address: str, share: str = "", **fields: Any) -> None:
        now = self._clock()
        key = (event, address, share)
        bucket = self._buckets.get(key)
        if bucket is not None and now - bucket.first >= self.window:
            self._emit(key, bucket)
            bucket = None
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                key = (event, "(other)", "")
                bucket = self._buckets.get(key)
                if bucket is not None:
                    bucket.extra += 1
                    return
            self._buckets[key] = _Bucket(first=now, fields=dict(fields))
            row = {"address": key[1], **({"share": share} if share else {}), **fields,
                   "count": 1}
            self._write(event, row)
            return
        bucket.extra += 1
        bucket.fields.update(fields)

    def _emit(self, key: Key, bucket: _Bucket) -> None:
        del self._buckets[key]
        if bucket.extra:
            event, address, share = key
            start = datetime.fromtimestamp(bucket.first, UTC).isoformat(timespec="seconds")
            self._write(event, {"address": address, **({"share": share} if share else {}),
                                **bucket.fields, "count": bucket.extra, "aggregated": True,
                                "window_start": start, "window_seconds": int(self.window)})

    def flush(self, force: bool = False) -> None:
        """Write the counts of finished minutes (all of them when ``force``)."""
        now = self._clock()
        for key, bucket in list(self._buckets.items()):
            if force or now - bucket.first >= self.window:
                self._emit(key, bucket)
