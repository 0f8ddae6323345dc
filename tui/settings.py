"""User settings in ``$FERRY_HOME/settings.toml``: the theme and the keymap.

::

    theme = "ferry-dark"

    [keymap]              # binding id = key(s); see the Help screen (?) for every id
    "ferry.help" = "f1"
    "ferry.sites.add" = "n"

The file is edited with ``tomlkit`` so comments and keys Ferry does not know survive a save;
saves are atomic (:func:`backend.fsutil.atomic_write`). A broken file is reported and the
defaults used, and it is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
import tomlkit.exceptions

from backend import paths
from backend.errors import ConfigError
from backend.fsutil import atomic_write

DEFAULT_THEME = "ferry-dark"


@dataclass
class Settings:
    theme: str = DEFAULT_THEME
    keymap: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> tomlkit.TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(
            f"{path}:{exc.line}: invalid TOML; using default settings (file left untouched)"
        ) from None


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings; raises :class:`ConfigError` (one line) for a broken file."""
    path = path or paths.settings_file()
    data = _read(path).unwrap()
    settings = Settings()
    theme = data.get("theme", DEFAULT_THEME)
    if not isinstance(theme, str) or not theme:
        raise ConfigError(f"{path}: 'theme' must be a theme name")
    settings.theme = theme
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict):
        raise ConfigError(f"{path}: [keymap] must be a table of binding-id = \"key\"")
    for binding_id, keys in keymap.items():
        if not isinstance(keys, str) or not keys.strip():
            raise ConfigError(
                f"{path}: keymap {binding_id!r} must be a key such as \"f5\" or \"ctrl+n\""
            )
        settings.keymap[str(binding_id)] = keys.strip()
    return settings


def save_theme(theme: str, path: Path | None = None) -> None:
    """Remember the chosen theme, keeping everything else in the file as it was."""
    path = path or paths.settings_file()
    doc = _read(path)
    doc["theme"] = theme
    atomic_write(path, tomlkit.dumps(doc), mode=0o600)
