"""The transfer engine's public data types: job specs, job/file status, progress events.

These are the types the TUI and the CLI code against (see :mod:`backend.transfers.engine`).
Everything here is plain data: no I/O, no asyncssh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from backend.errors import UsageError
from backend.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES, TreeLimits
from backend.names import display_name

Direction = Literal["get", "put"]
ConflictPolicy = Literal["overwrite", "newer", "size", "resume", "rename", "skip"]
VerifyMode = Literal["auto", "sha256", "size", "none"]
JobState = Literal["queued", "running", "paused", "done", "failed", "cancelled"]
FileState = Literal["queued", "running", "paused", "done", "failed", "cancelled", "skipped"]
EventKind = Literal["job", "file", "progress"]

DIRECTIONS: tuple[str, ...] = ("get", "put")
CONFLICT_POLICIES: tuple[str, ...] = ("overwrite", "newer", "size", "resume", "rename", "skip")
VERIFY_MODES: tuple[str, ...] = ("auto", "sha256", "size", "none")
# How a finished file was checked (FileRow.verify / Outcome.verify), and how that is said to a
# user everywhere (CLI, --json "verified_by", audit, TUI queue, case send). Never print a local
# hash as if the server had computed it: only "sha256-server" and "sha256-readback" are a
# SHA-256 of the server's copy.
VERIFIED_BY: dict[str, str] = {
    "sha256-server": "sha256 by server",
    "sha256-readback": "sha256 by read-back",
    "aes-gcm": "authenticated by AES-GCM",
    "size+tail": "size and tail only",
    "size": "size only",
    "none": "not verified",
}
SHA256_OF_SERVER_COPY: frozenset[str] = frozenset({"sha256-server", "sha256-readback"})


def verified_label(method: str | None) -> str:
    """The words for a verification method (journal rows written before 0.2 said "sha256")."""
    if method == "sha256":
        method = "sha256-server"
    return VERIFIED_BY.get(method or "none", method or "not verified")


def verified_counts(methods: list[str | None]) -> list[tuple[str, int]]:
    """(method, files) for a job's done files, strongest method first (VERIFIED_BY's order;
    journal rows of before 0.2 saying "sha256" count as "sha256-server")."""
    counts: dict[str, int] = {}
    for method in methods:
        key = "sha256-server" if method == "sha256" else (method or "none")
        counts[key] = counts.get(key, 0) + 1
    order = list(VERIFIED_BY)
    ranked = sorted(counts, key=lambda m: order.index(m) if m in order else len(order))
    return [(m, counts[m]) for m in ranked]
FINISHED_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
UNFINISHED_STATES: frozenset[str] = frozenset({"queued", "running", "paused"})


@dataclass(frozen=True)
class JobSpec:
    """What to transfer. ``get``: ``sources`` are remote paths on ``site``, ``destination`` a
    local path; ``put``: the reverse. ``parallel``: files at once (None: the engine decides).
    ``max_entries`` / ``max_depth`` / ``max_bytes``: the planning caps (backend/limits.py)."""

    direction: Direction
    site: str
    sources: list[str]
    destination: str
    recursive: bool = False
    on_conflict: ConflictPolicy = "resume"
    verify: VerifyMode = "auto"
    parallel: int | None = None
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_bytes: int | None = DEFAULT_MAX_BYTES
    # who asked for the job, "<kind>:<detail>" (e.g. "case-send:<study id>"): the finisher of
    # that kind runs when the job ends, in any process (backend/transfers/finishers.py)
    tag: str | None = None

    @property
    def limits(self) -> TreeLimits:
        return TreeLimits(self.max_entries, self.max_depth, self.max_bytes)

    def validate(self) -> JobSpec:
        if self.direction not in DIRECTIONS:
            raise UsageError(f"direction must be get or put, not {self.direction!r}")
        if not self.site:
            raise UsageError("a transfer needs a site")
        if not self.sources:
            raise UsageError("nothing to transfer: give at least one source")
        if any(not s for s in self.sources):
            raise UsageError("an empty source path was given")
        if not self.destination:
            raise UsageError("a transfer needs a destination")
        if self.on_conflict not in CONFLICT_POLICIES:
            raise UsageError(f"--on-conflict must be one of {', '.join(CONFLICT_POLICIES)}")
        if self.verify not in VERIFY_MODES:
            raise UsageError(f"--verify must be one of {', '.join(VERIFY_MODES)}")
        if self.parallel is not None and not 1 <= self.parallel <= 256:
            raise UsageError("--parallel must be 1-256")
        self.limits.validate()
        if self.tag is not None and (not isinstance(self.tag, str) or ":" not in self.tag):
            raise UsageError(f"a job tag is '<kind>:<detail>', not {self.tag!r}")
        return self

    @property
    def label(self) -> str:
        first = self.sources[0].rstrip("/").rsplit("/", 1)[-1] or self.sources[0]
        more = f" +{len(self.sources) - 1}" if len(self.sources) > 1 else ""
        arrow = "from" if self.direction == "get" else "to"
        return display_name(f"{first}{more} {arrow} {self.site}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # caps at their defaults are left out, so a job journaled before they existed still
        # matches the same command run again (Journal.find_unfinished compares this text)
        for key, default in _DEFAULT_CAPS.items():
            if data[key] == default:
                del data[key]
        if data["tag"] is None:  # untagged specs keep the JSON older journals hold (adopt())
            del data["tag"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["sources"] = list(known.get("sources", []))
        return cls(**known)


_DEFAULT_CAPS: dict[str, int | None] = {
    "max_entries": DEFAULT_MAX_ENTRIES, "max_depth": DEFAULT_MAX_DEPTH,
    "max_bytes": DEFAULT_MAX_BYTES,
}


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job (live figures for jobs this process runs, journal otherwise)."""

    id: int
    direction: Direction
    site: str
    label: str
    state: JobState
    bytes_done: int = 0
    bytes_total: int = 0
    speed: float = 0.0  # bytes/s, smoothed
    eta: float | None = None  # seconds
    files_done: int = 0
    files_total: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    error: str | None = None
    priority: int = 0
    spec: JobSpec | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("spec", None)
        return data


@dataclass(frozen=True)
class FileStatus:
    """One file of a job as the journal records it."""

    id: int
    job_id: int
    source: str
    destination: str
    state: FileState
    size: int
    bytes_done: int
    offset: int  # verified contiguous offset (resume point)
    error: str | None = None
    sha256: str | None = None
    verify: str | None = None  # method actually used (VERIFIED_BY's keys)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TransferEvent:
    """What subscribers receive. ``kind``: ``job`` (a job changed state), ``file`` (one file
    started or finished; ``path`` names it), ``progress`` (throttled byte counts, ≤ ~10/s/job)."""

    kind: EventKind
    job_id: int
    state: str
    path: str | None = None
    bytes_done: int = 0
    bytes_total: int = 0
    speed: float = 0.0
    eta: float | None = None
    error: str | None = None
    files_done: int = 0
    files_total: int = 0
    files_failed: int = 0
    destination: str | None = None  # file events: where it went (final name)
    sha256: str | None = None  # file events of finished files
    verify: str | None = None  # method used (VERIFIED_BY's keys)
    note: str | None = None  # file events of done files: e.g. why it restarted from zero

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
