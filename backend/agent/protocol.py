"""The agent's protocol: versioned JSON lines on a Unix socket (docs/agent.md, "Protocol").

Every message is one JSON object on one line (UTF-8, at most :data:`MAX_LINE` bytes):

* the client opens with ``{"type": "hello", "version": 1, "client": "cli"}``; the agent
  answers ``{"type": "hello", "version": 1, "pid": ..., "ferry": "0.x"}``, or, for another
  version, ``{"type": "error", "error": {...}}`` and closes;
* requests ``{"type": "request", "id": 7, "method": "submit", "params": {...}}`` get one
  ``{"type": "reply", "id": 7, "result": ...}`` or ``{"type": "reply", "id": 7, "error": {...}}``
  (replies may come out of order: ``wait`` replies when its job ends);
* events ``{"type": "event", "event": "progress" | "job" | "file" | "notification" |
  "attention" | "attention-done" | "vault", "data": {...}}`` after a ``subscribe``.

An error is ``{"kind": "HostKeyUnknownError", "exit_code": 7, "message": ..., "hint": ...}``
(backend/errors.py), so a client exits with the code it would have exited with in-process.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from backend import errors
from backend.errors import AgentError, FerryError

VERSION = 1
MAX_LINE = 16 << 20  # a report of a job with many failed files is one line


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise AgentError("a message on the agent socket is too long") from None
    except (ConnectionError, OSError):
        return None
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        raise AgentError("the agent socket carried something that is not JSON") from None
    if not isinstance(message, dict):
        raise AgentError("the agent socket carried a message that is not an object")
    return message


def error_to_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, FerryError):
        data: dict[str, Any] = {"kind": type(exc).__name__, "exit_code": exc.exit_code,
                                "message": exc.message, "hint": exc.hint}
        for extra in ("fingerprint", "key_type", "old_fingerprints", "new_fingerprint"):
            if hasattr(exc, extra):
                data[extra] = getattr(exc, extra)
        return data
    return {"kind": "FerryError", "exit_code": 1,
            "message": f"internal error in the agent: {type(exc).__name__}: {exc}",
            "hint": "see the agent's log (ferry agent status names it)"}


def error_from_json(data: dict[str, Any]) -> FerryError:
    """The FerryError a reply carried, of the same class (hence the same exit code)."""
    cls = getattr(errors, str(data.get("kind")), None)
    if not (isinstance(cls, type) and issubclass(cls, FerryError)):
        cls = FerryError
    err = cls.__new__(cls)
    FerryError.__init__(err, str(data.get("message") or "the agent failed"),
                        hint=data.get("hint"))
    for extra in ("fingerprint", "key_type", "old_fingerprints", "new_fingerprint"):
        if extra in data:
            setattr(err, extra, data[extra])
    if cls is FerryError and data.get("exit_code") not in (None, 1):
        err.exit_code = int(data["exit_code"])
    return err


def mismatch_error(theirs: object) -> AgentError:
    return AgentError(
        f"the running Ferry agent speaks protocol version {theirs}, this ferry speaks {VERSION}",
        hint="restart the agent with this version: ferry agent stop (its transfers resume "
             "from the journal when the new one starts)",
    )
