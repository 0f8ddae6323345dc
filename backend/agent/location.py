"""Where the agent lives: its private folder (socket, lock, pid file), its log, and what it
saves for the next agent (case watchers, the share service: :func:`saved_file`).

The folder is ``$FERRY_HOME/state/agent`` when ``FERRY_HOME`` is set (each home has its own
agent: tests and scripts stay isolated), else ``$XDG_RUNTIME_DIR/ferry`` (the per-user runtime
folder systemd provides), else ``~/.config/ferry/state/agent``. A Unix socket path holds at
most 107 bytes, so a folder whose socket path would be longer is replaced by
``$XDG_RUNTIME_DIR`` or ``/tmp`` ``/ferry-<uid>/<hash of the folder>``. Whatever it is, the
folder is created 0700 and refused when it is a symlink, another user's, or open to others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from backend import paths
from backend.errors import ConfigError
from backend.fsutil import atomic_write

log = logging.getLogger("ferry.agent")

SOCKET_NAME = "agent.sock"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux (107 and a NUL); keep a margin


def _preferred() -> Path:
    if os.environ.get("FERRY_HOME"):
        return paths.state_dir() / "agent"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "ferry"
    return paths.state_dir() / "agent"


def agent_dir() -> Path:
    """The agent's private folder (created 0700 and checked)."""
    base = _preferred()
    if len(str(base / SOCKET_NAME)) > MAX_SOCKET_PATH:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        root = Path(xdg) if xdg and os.path.isdir(xdg) else Path(tempfile.gettempdir())
        digest = hashlib.sha256(str(base).encode()).hexdigest()[:16]
        parent = private_dir(root / f"ferry-{os.getuid()}")
        base = parent / digest
    return private_dir(base)


def private_dir(path: Path) -> Path:
    """``path`` as a 0700 folder of this user's; ConfigError when it is anything else."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the agent folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the agent folder {path} is not a folder (a symlink?)",
                          hint="remove it; Ferry creates it again")
    if st.st_uid != os.getuid():
        raise ConfigError(f"the agent folder {path} belongs to uid {st.st_uid}, not to you",
                          hint="remove it, or set FERRY_HOME to a folder of yours")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def socket_path() -> Path:
    return agent_dir() / SOCKET_NAME


def lock_path() -> Path:
    return agent_dir() / "agent.lock"


def pid_path() -> Path:
    return agent_dir() / "agent.pid"


def log_path() -> Path:
    """Where the agent's standard output and error go (a crash's traceback too)."""
    return paths.logs_dir() / "agent.log"


def read_pid() -> int | None:
    try:
        return int(pid_path().read_text().strip())
    except (OSError, ValueError):
        return None


def saved_file(name: str) -> Path:
    """Where the agent saves ``name`` for the next agent: ``<state>/agent/NAME`` (state, not
    the runtime folder: it must outlive a reboot)."""
    return paths.state_dir() / "agent" / name


def read_saved(path: Path) -> dict[str, Any] | None:
    """The JSON object a previous agent saved in ``path``; None when there is none, or (with a
    warning in the log) when it cannot be read or is not an object."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("ignoring %s: not a JSON object", path)
        return None
    return data


def write_saved(path: Path, data: dict[str, Any]) -> None:
    """Save ``data`` in ``path`` for the next agent: 0600, never a half-written file."""
    atomic_write(path, json.dumps(data))
