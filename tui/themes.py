"""Themes as data: built-in ones from the ``themes/`` folder, user ones from
``$FERRY_HOME/themes/*.toml``, each validated before it is registered.

A theme file::

    name = "ferry-dark"          # required, letters/digits/-/_
    dark = true
    primary = "#3AA0C8"          # required; any colour Textual parses
    secondary = "#..."           # optional: secondary accent warning error success
    foreground = "#..."          #           foreground background surface panel boost
    luminosity_spread = 0.15     # optional floats
    text_alpha = 0.95
    [variables]                  # optional Textual design variables
    "footer-key-foreground" = "#..."

The built-in files ship inside the wheel as the data package ``tui.builtin_themes`` (setup.py
maps ``themes/`` there); in a source checkout they are read from ``themes/`` directly.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from backend import paths
from backend.errors import ConfigError

_COLOURS = (
    "primary", "secondary", "accent", "warning", "error", "success",
    "foreground", "background", "surface", "panel", "boost",
)
_FLOATS = ("luminosity_spread", "text_alpha")
_KNOWN = {"name", "dark", "variables", "ansi", *_COLOURS, *_FLOATS}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_THEME_BYTES = 64 * 1024
BUILTIN_NAMES = ("ferry-dark", "ferry-light", "ferry-high-contrast")


def builtin_dir() -> Traversable:
    """Where the built-in theme files are: the installed package, else the source tree."""
    try:
        return resources.files("tui.builtin_themes")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "themes"


def parse_theme(text: str, source: str) -> Theme:
    """A validated :class:`Theme` from TOML text; :class:`ConfigError` names the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"theme {source}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"theme {source}: unknown setting(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"theme {source}: 'name' must be letters, digits, '-' or '_'")
    if "primary" not in data:
        raise ConfigError(f"theme {source}: 'primary' colour is required")
    kwargs: dict[str, Any] = {"name": name}
    for key in _COLOURS:
        if key in data:
            kwargs[key] = _colour(source, key, data[key])
    for key in _FLOATS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"theme {source}: {key} must be a number")
            kwargs[key] = float(value)
    for key in ("dark", "ansi"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"theme {source}: {key} must be true or false")
            kwargs[key] = data[key]
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ConfigError(f"theme {source}: [variables] must map names to strings")
    kwargs["variables"] = dict(variables)
    theme = Theme(**kwargs)
    try:
        theme.to_color_system().generate()
    except Exception as exc:
        raise ConfigError(f"theme {source}: {exc}") from None
    return theme


def _colour(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"theme {source}: {key} must be a colour string like \"#1e88e5\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ConfigError(f"theme {source}: {key} {value!r} is not a colour") from None
    return value


def load_builtin_themes() -> list[Theme]:
    """Ferry's own themes. A broken one is a bug, so it raises."""
    folder = builtin_dir()
    return [
        parse_theme(folder.joinpath(f"{name}.toml").read_text(encoding="utf-8"), name)
        for name in BUILTIN_NAMES
    ]


def load_user_themes(folder: Path | None = None) -> tuple[list[Theme], list[str]]:
    """User themes and one problem line per file that could not be used."""
    folder = folder or paths.themes_dir()
    themes: list[Theme] = []
    problems: list[str] = []
    if not folder.is_dir():
        return themes, problems
    for path in sorted(folder.glob("*.toml")):
        try:
            if path.stat().st_size > MAX_THEME_BYTES:
                raise ConfigError(f"theme {path.name}: larger than 64 KiB")
            text = path.read_text(encoding="utf-8")
            themes.append(parse_theme(text, path.name))
        except ConfigError as exc:
            problems.append(exc.message)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"theme {path.name}: cannot read: {exc}")
    return themes, problems
