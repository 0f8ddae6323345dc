"""Where Ferry keeps configuration, state and logs.

* ``$FERRY_HOME`` set (tests and scripts use it): everything under that one root, state in
  ``state/``, logs in ``logs/``.
* Otherwise the platform's folders (platformdirs): configuration (sites, vault, keys, themes,
  settings, the audit key) in ``user_config_dir`` (``~/.config/ferry`` on Linux); state
  (journals and databases) in ``user_state_dir`` (``~/.local/state/ferry``); logs in
  ``user_log_dir`` (``~/.local/state/ferry/log``). Where the platform's state folder is the
  config folder itself (macOS, Windows), state stays in its ``state/`` subfolder.

An installation from before this split kept state and logs in the config folder's ``state/``
and ``logs/``: the first call moves each entry to the new place (never over an existing one),
and the move is logged (:func:`log_moves`, called by backend/log.py once the log is open).
Directories are created 0700.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path

import platformdirs

from backend.fsutil import ensure_private_dir

log = logging.getLogger("ferry.paths")

_move_lock = threading.Lock()
_moved_once = False
_moves: list[str] = []


def ferry_home() -> Path:
    """The root of Ferry's configuration (and of everything when ``FERRY_HOME`` is set),
    created 0700 if missing."""
    env = os.environ.get("FERRY_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_config_dir("ferry"))
    return ensure_private_dir(root)


def _platform_dirs() -> tuple[Path, Path]:
    """(state, logs) without FERRY_HOME."""
    config = Path(platformdirs.user_config_dir("ferry"))
    state = Path(platformdirs.user_state_dir("ferry"))
    logs = Path(platformdirs.user_log_dir("ferry"))
    if state == config:
        state = config / "state"
    if logs == config:
        logs = config / "logs"
    return state, logs


def _move_entries(old: Path, new: Path) -> None:
    if not old.is_dir() or old == new:
        return
    ensure_private_dir(new)
    for entry in sorted(old.iterdir()):
        target = new / entry.name
        if target.exists() or target.is_symlink():
            _moves.append(f"kept {entry} where it is: {target} already exists")
            continue
        try:
            os.rename(entry, target)
        except OSError:
            try:
                shutil.move(entry, target)  # another file system
            except OSError as exc:
                _moves.append(f"could not move {entry} to {target}: {exc}")
                continue
        _moves.append(f"moved {entry} to {target}")
    with contextlib.suppress(OSError):  # something stayed behind (named above)
        old.rmdir()


def _move_old_layout() -> None:
    """Once per process: state and logs of an installation from before the split move from
    the config folder to the platform's state and log folders."""
    global _moved_once
    with _move_lock:
        if _moved_once:
            return
        _moved_once = True
        config = Path(platformdirs.user_config_dir("ferry"))
        state, logs = _platform_dirs()
        _move_entries(config / "state", state)
        _move_entries(config / "logs", logs)
    if logging.getLogger("ferry").handlers:  # the log is open: say it now
        for line in take_moves():
            log.info("%s", line)


def log_moves() -> None:
    """Write what the one-time move did to the log (backend/log.py calls it once the log is
    open: the move may have run to find the log folder itself)."""
    for line in take_moves():
        log.info("%s", line)


def take_moves() -> list[str]:
    """What the one-time move did in this process (each line once), for the log."""
    out = list(_moves)
    _moves.clear()
    return out


def sites_file() -> Path:
    return ferry_home() / "sites.toml"


def vault_file() -> Path:
    return ferry_home() / "vault.bin"


def keys_dir() -> Path:
    return ensure_private_dir(ferry_home() / "keys")


def logs_dir() -> Path:
    """Ferry's log files (``ferry.log``, the agent's log)."""
    if os.environ.get("FERRY_HOME"):
        return ensure_private_dir(ferry_home() / "logs")
    _move_old_layout()
    return ensure_private_dir(_platform_dirs()[1])


def state_dir() -> Path:
    """Journals and databases (transfer queue, audit log, cases, shares)."""
    if os.environ.get("FERRY_HOME"):
        return ensure_private_dir(ferry_home() / "state")
    _move_old_layout()
    return ensure_private_dir(_platform_dirs()[0])


def themes_dir() -> Path:
    """User themes (``*.toml``), loaded next to the built-in ones."""
    return ferry_home() / "themes"


def settings_file() -> Path:
    """User settings: theme, keymap, defaults."""
    return ferry_home() / "settings.toml"
