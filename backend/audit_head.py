"""The audit log's keyed head and its anchors: what proves where the hash chain ends.

The chain in ``backend/audit.py`` proves that rows were not edited in place, but only a record
of the *end* of the chain kept outside the database shows that rows were not cut off the end,
that the table was not wiped, and that the chain was not recomputed after a rewrite. This
module owns that record (docs/security.md, "Audit log"):

* the **key folder** (``$FERRY_HOME/audit-key/`` or ``$FERRY_AUDIT_KEY_DIR``; 0700), apart
  from the database in ``$FERRY_HOME/state/``;
* ``key``: 32 random bytes (hex, 0600), created once with ``O_EXCL``;
* ``head``: one line ``ferry-audit-head 1 PREV_ROWS PREV_HASH ROWS HASH MAC`` where MAC is
  HMAC-SHA256 under the key. An append writes the head *before* its commit with PREV = the
  state it extends (pending) and, after the commit, rewrites it with PREV = ROWS (final).
  A pending head accepts either state, so a crash on either side of the commit verifies;
* ``lock``: an flock taken around every head write so a late "final" never overwrites a newer
  head;
* **anchor lines** ``ferry-audit-anchor 1 TIME KEY_ID ROWS HASH MAC`` that ``ferry audit
  anchor`` appends to a file the operator keeps elsewhere. Checking that each anchored
  (ROWS, HASH) is still a prefix of the chain needs no key, so it holds against someone who
  has the key too.

Nothing here touches SQLite; ``backend/audit.py`` calls it while it holds the database's write
lock, which serialises head writers across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ConfigError, IntegrityError
from backend.fsutil import atomic_write, ensure_private_dir, exclusive_lock

HEAD_MAGIC = "ferry-audit-head"
ANCHOR_MAGIC = "ferry-audit-anchor"
FORMAT = "1"
KEY_BYTES = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def default_key_dir() -> Path:
    """``$FERRY_AUDIT_KEY_DIR`` if set, else ``$FERRY_HOME/audit-key`` (not under state/)."""
    from backend.paths import ferry_home

    env = os.environ.get("FERRY_AUDIT_KEY_DIR")
    return Path(env).expanduser() if env else ferry_home() / "audit-key"


@dataclass(frozen=True)
class ChainState:
    """The end of the chain: how many rows (= the last row id) and the last row's hash."""

    rows: int
    hash: str

    def __str__(self) -> str:
        return f"{self.rows} {self.hash}"


@dataclass(frozen=True)
class Head:
    prev: ChainState
    cur: ChainState

    @property
    def pending(self) -> bool:
        return self.prev != self.cur

    def accepts(self, state: ChainState) -> bool:
        return state in (self.cur, self.prev)


@dataclass(frozen=True)
class Anchor:
    line_no: int
    time: str
    key_id: str
    state: ChainState
    mac: str

    def signed_text(self) -> str:
        return f"{ANCHOR_MAGIC} {FORMAT} {self.time} {self.key_id} {self.state}"


class HeadInvalid(Exception):
    """The head file exists but is not a head signed with this key."""


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of a key (anchors from another log or key are told apart)."""
    return hashlib.sha256(b"ferry-audit-key-id" + key).hexdigest()[:16]


def _state(rows: str, digest: str) -> ChainState:
    if not rows.isdigit() or not _HEX64.match(digest):
        raise ValueError("bad chain state")
    return ChainState(int(rows), digest)


class KeyedHead:
    """The key, head and lock files in one key folder."""

    def __init__(self, key_dir: Path) -> None:
        self.dir = Path(key_dir)
        self.key_path = self.dir / "key"
        self.head_path = self.dir / "head"
        self.lock_path = self.dir / "lock"

    # -- key ------------------------------------------------------------------------------
    def load_key(self) -> bytes | None:
        """The key, or None when this log has never had one. A damaged key is an integrity
        failure (someone wrote the key folder); an unreadable one a configuration error."""
        try:
            fd = os.open(self.key_path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the audit key {self.key_path}: {exc.strerror}",
                hint="it must be readable by the account that runs Ferry",
            ) from None
        with os.fdopen(fd, "rb") as fh:
            text = fh.read(200).decode("ascii", "replace").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise IntegrityError(
                f"the audit key {self.key_path} is damaged (not {KEY_BYTES} bytes of hex)",
                hint="the key folder was written outside Ferry; keep a copy and report it",
            )
        return key

    def create_key(self) -> bytes:
        """Create the key (0600, exclusive). Callers hold the database write lock."""
        ensure_private_dir(self.dir)
        key = os.urandom(KEY_BYTES)
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            existing = self.load_key()
            assert existing is not None
            return existing
        except OSError as exc:
            raise ConfigError(
                f"cannot create the audit key {self.key_path}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return key

    # -- head -----------------------------------------------------------------------------
    def read(self, key: bytes) -> Head | None:
        """The head, or None if the file is missing. Raises :class:`HeadInvalid` if it is
        not a well-formed head carrying this key's MAC."""
        try:
            text = self.head_path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the audit head {self.head_path}: {exc.strerror}"
            ) from None
        parts = text.split(" ")
        if len(parts) != 7 or parts[0] != HEAD_MAGIC or parts[1] != FORMAT:
            raise HeadInvalid("not a Ferry audit head")
        try:
            head = Head(_state(parts[2], parts[3]), _state(parts[4], parts[5]))
        except ValueError:
            raise HeadInvalid("not a Ferry audit head") from None
        if not hmac.compare_digest(_mac(key, " ".join(parts[:6])), parts[6]):
            raise HeadInvalid("its signature does not match the audit key")
        return head

    def _write(self, key: bytes, prev: ChainState, cur: ChainState) -> None:
        body = f"{HEAD_MAGIC} {FORMAT} {prev} {cur}"
        try:
            atomic_write(self.head_path, f"{body} {_mac(key, body)}\n", mode=0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the audit head {self.head_path}: {exc.strerror}",
                hint="the event was not recorded; free space or fix the key folder's rights",
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_private_dir(self.dir)
        with exclusive_lock(self.lock_path):
            yield

    def begin(self, key: bytes, prev: ChainState, cur: ChainState) -> None:
        """Record that the chain is moving from ``prev`` to ``cur`` (before the commit)."""
        with self._locked():
            self._write(key, prev, cur)

    def finish(self, key: bytes, cur: ChainState) -> None:
        """After the commit: make the head final, unless a newer append already moved it."""
        with self._locked():
            try:
                head = self.read(key)
            except HeadInvalid:
                return
            if head is not None and head.pending and head.cur == cur:
                self._write(key, cur, cur)

    def snapshot(self) -> bytes | None:
        """The head file's bytes (None if missing), to put back if an append rolls back."""
        try:
            return self.head_path.read_bytes()
        except FileNotFoundError:
            return None

    def restore(self, data: bytes | None) -> None:
        """Put back what :meth:`snapshot` saw: a rolled-back append leaves no trace, and in
        particular never a fresh head over a table it found tampered with."""
        with self._locked():
            if data is None:
                self.head_path.unlink(missing_ok=True)
            else:
                atomic_write(self.head_path, data, mode=0o600)

    def reset(self, key: bytes, state: ChainState) -> None:
        """Write a final head for ``state`` (a new log, a migration, a rolled-back append)."""
        with self._locked():
            self._write(key, state, state)

    # -- anchors --------------------------------------------------------------------------
    @staticmethod
    def anchor_line(key: bytes, state: ChainState, time: str) -> str:
        body = f"{ANCHOR_MAGIC} {FORMAT} {time} {key_id(key)} {state}"
        return f"{body} {_mac(key, body)}\n"


def parse_anchors(text: str) -> tuple[list[Anchor], list[int]]:
    """The anchors in an anchor file and the numbers of lines that are not anchors (blank
    lines and ``#`` comments are skipped)."""
    anchors: list[Anchor] = []
    bad: list[int] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(" ")
        try:
            if len(parts) != 7 or parts[0] != ANCHOR_MAGIC or parts[1] != FORMAT:
                raise ValueError
            anchors.append(Anchor(no, parts[2], parts[3], _state(parts[4], parts[5]), parts[6]))
        except ValueError:
            bad.append(no)
    return anchors, bad


def anchor_signed_by(key: bytes, anchor: Anchor) -> bool:
    return hmac.compare_digest(_mac(key, anchor.signed_text()), anchor.mac)
