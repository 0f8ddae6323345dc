"""Ferry's transfer engine: persistent queue, parallel resumable verified transfers.

Public API: :class:`~backend.transfers.engine.TransferEngine` and the types in
:mod:`backend.transfers.model` (``JobSpec``, ``JobStatus``, ``FileStatus``, ``TransferEvent``).
docs/transfers.md describes the behaviour.
"""

from backend.transfers.engine import Connector, RetryPolicy, TransferEngine
from backend.transfers.journal import Journal
from backend.transfers.model import FileStatus, JobSpec, JobStatus, TransferEvent

__all__ = [
    "Connector",
    "FileStatus",
    "JobSpec",
    "JobStatus",
    "Journal",
    "RetryPolicy",
    "TransferEngine",
    "TransferEvent",
]
