"""Caps on what one recursive walk may find: entries, folder depth and bytes.

A server decides what its listings say: it can generate an endless tree, or a folder whose
listing never ends. Every recursive operation (``get -r`` / ``put -r`` planning, deletes, case
walks) counts what it finds against a :class:`TreeBudget`, and the first cap reached stops it
with :class:`LimitExceededError` (exit 16) naming the cap, before the planner creates any
folder. Defaults (docs/transfers.md "Caps"): 200,000 entries and 64 levels, which no study or
case archive comes near; no byte cap, as a large transfer is legitimate and each file's bytes
are bounded by what the server actually sends. ``ferry get/put --max-entries N --max-depth N
--max-bytes SIZE`` raise or set them per job.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.errors import LimitExceededError, UsageError
from backend.units import human_size

DEFAULT_MAX_ENTRIES = 200_000
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_BYTES: int | None = None


@dataclass(frozen=True)
class TreeLimits:
    """The caps of one job (or one walk). ``max_bytes`` None: no byte cap."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_bytes: int | None = DEFAULT_MAX_BYTES

    def validate(self) -> TreeLimits:
        if self.max_entries < 1:
            raise UsageError("--max-entries must be at least 1")
        if self.max_depth < 1:
            raise UsageError("--max-depth must be at least 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise UsageError("--max-bytes must be at least 1 byte")
        return self


class TreeBudget:
    """What one job (all its sources) has found so far, against its :class:`TreeLimits`.

    ``flags``: name the ``ferry get/put`` flag that raises a cap in the error's hint (off for
    walks no flag controls, e.g. a delete).
    """

    def __init__(self, limits: TreeLimits | None = None, *, flags: bool = True) -> None:
        self.limits = limits or TreeLimits()
        self.flags = flags
        self.entries = 0
        self.bytes = 0

    @property
    def entries_left(self) -> int:
        """How many more entries may be taken before the entry cap is exceeded."""
        return max(0, self.limits.max_entries - self.entries)

    def take(self, where: str, depth: int, size: int = 0) -> None:
        """Count one entry ``depth`` levels below the top named ``where`` (display-safe),
        holding ``size`` bytes; raise when that passes a cap."""
        limits = self.limits
        if depth > limits.max_depth:
            self._exceeded(f"folders under {where} nest deeper than {limits.max_depth} levels",
                           "--max-depth N")
        self.entries += 1
        if self.entries > limits.max_entries:
            self.over_entries(where)
        self.bytes += size
        if limits.max_bytes is not None and self.bytes > limits.max_bytes:
            self._exceeded(f"the files under {where} total more than "
                           f"{human_size(limits.max_bytes)}", "--max-bytes SIZE")

    def over_entries(self, where: str) -> None:
        self._exceeded(f"more than {self.limits.max_entries:,} entries under {where}",
                       "--max-entries N")

    def _exceeded(self, what: str, flag: str) -> None:
        hint = f"raise the cap with {flag}" if self.flags else None
        raise LimitExceededError(f"{what}: stopped before changing anything",
                                 hint=hint)
