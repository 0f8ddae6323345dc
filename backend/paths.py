"""Where Ferry keeps configuration and state.

Everything lives under one root: ``$FERRY_HOME`` when set (tests and scripts use it), else the
platform's config dir (``~/.config/ferry`` on Linux). Directories are created 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from backend.fsutil import ensure_private_dir


def ferry_home() -> Path:
    """The root of Ferry's config and state, created 0700 if missing."""
    env = os.environ.get("FERRY_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_config_dir("ferry"))
    return ensure_private_dir(root)


def sites_file() -> Path:
    return ferry_home() / "sites.toml"


def vault_file() -> Path:
    return ferry_home() / "vault.bin"


def keys_dir() -> Path:
    return ensure_private_dir(ferry_home() / "keys")


def logs_dir() -> Path:
    return ensure_private_dir(ferry_home() / "logs")


def state_dir() -> Path:
    """Journals and databases (transfer queue, cases, shares)."""
    return ensure_private_dir(ferry_home() / "state")


def themes_dir() -> Path:
    """User themes (``*.toml``), loaded next to the built-in ones."""
    return ferry_home() / "themes"


def settings_file() -> Path:
    """User settings: theme, keymap, defaults."""
    return ferry_home() / "settings.toml"
