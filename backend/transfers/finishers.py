"""Work that must happen when a tagged job ends, in whichever process ends it.

A :class:`~backend.transfers.model.JobSpec` may carry a ``tag`` ``"<kind>:<detail>"`` saying
who asked for the job (``"case-send:<study id>"``: ``ferry case send``; ``"move:direct"``: a
move, backend/transfers/moves.py; ``"relay:…"`` / ``"relay-put:…"``: the legs of a
site-to-site copy or move, backend/relay.py). The tag is stored with
the spec in the journal, so when the job ends (``done``, ``failed`` or ``cancelled``) the engine
that settles it — the CLI that submitted it, the TUI, or ``ferry queue resume`` /
``ferry queue cancel`` in a fresh process — calls the finisher registered for ``<kind>``. A
process that never imported the module owning a kind finds it through :data:`KNOWN`, so the
job is completed the same way wherever it ends.

A finisher returns an optional one-line note for the user (the engine keeps it:
``TransferEngine.notes(job_id)``). It must be idempotent: a job cancelled from another process
while running may be seen ending by both. Its failure is logged, never the job's.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from backend.transfers.model import JobSpec

log = logging.getLogger("ferry.transfers")

# tag kind -> the module that registers its finisher when imported
KNOWN: dict[str, str] = {
    "case-send": "backend.cases.sendjob",
    "move": "backend.transfers.moves",
    "relay": "backend.relay",
    "relay-put": "backend.relay",
}


@dataclass(frozen=True)
class Finished:
    """A job that has just ended, as a finisher sees it."""

    engine: Any  # the TransferEngine settling it (journal, files(), borrow_sftp(), ...)
    job_id: int
    spec: JobSpec
    state: str  # done | failed | cancelled
    error: str | None = None


Finisher = Callable[[Finished], Awaitable[str | None]]
_REGISTRY: dict[str, Finisher] = {}


def register(kind: str, finisher: Finisher) -> None:
    _REGISTRY[kind] = finisher


def kind_of(tag: str) -> str:
    return tag.split(":", 1)[0]


def finisher_for(tag: str) -> Finisher | None:
    """The finisher for ``tag``'s kind (importing its known module the first time)."""
    kind = kind_of(tag)
    if kind not in _REGISTRY and kind in KNOWN:
        importlib.import_module(KNOWN[kind])
    return _REGISTRY.get(kind)
