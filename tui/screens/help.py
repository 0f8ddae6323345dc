"""The Help screen: every key binding, grouped by screen, generated from the bindings.

Sections come from the classes themselves: the App, then every Screen and Widget subclass
defined in ``tui.screens``, ``tui.widgets`` and ``tui.dialogs`` that declares ``BINDINGS``.
Keys shown are the live ones, after the user's ``[keymap]`` in settings.toml; each row also
shows the binding id to use there.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.screens import status_bar

PACKAGES = ("tui.screens", "tui.widgets", "tui.dialogs")


@dataclass
class HelpRow:
    keys: str
    description: str
    binding_id: str


def _title(cls: type[DOMNode]) -> str:
    explicit = cls.__dict__.get("HELP_TITLE")
    if isinstance(explicit, str):
        return explicit
    name = cls.__name__
    for suffix in ("Screen", "Dialog", "Widget"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
    return name


def binding_classes() -> list[type[DOMNode]]:
    """Every Ferry Screen/Widget class that declares its own BINDINGS (import order)."""
    found: list[type[DOMNode]] = []
    for package_name in PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        modules = [package]
        for info in pkgutil.iter_modules(package.__path__):
            try:
                modules.append(importlib.import_module(f"{package_name}.{info.name}"))
            except ImportError:
                continue  # a screen still being written must not break Help
        for module in modules:
            for _name, cls in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(cls, DOMNode)
                    and cls.__module__ == module.__name__
                    and cls.__dict__.get("BINDINGS")
                    and cls not in found
                ):
                    found.append(cls)
    return found


def _bindings(cls: type[DOMNode]) -> list[Binding]:
    out: list[Binding] = []
    for item in cls.__dict__.get("BINDINGS", []):
        if isinstance(item, Binding):
            out.append(item)
        else:
            key, action, *rest = item
            out.append(Binding(key, action, rest[0] if rest else ""))
    return out


def rows_for(app: App[Any], cls: type[DOMNode]) -> list[HelpRow]:
    """Help rows of one class, with the app's keymap applied."""
    keymap: dict[str, str] = getattr(app, "_keymap", {})
    rows = []
    for binding in _bindings(cls):
        if not binding.description:
            continue
        keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
        shown = ", ".join(
            app.get_key_display(Binding(k.strip(), binding.action)) for k in keys.split(",")
        )
        rows.append(HelpRow(shown, binding.description, binding.id or ""))
    return rows


def sections(
    app: App[Any], current: type[DOMNode] | None = None
) -> list[tuple[str, list[HelpRow]]]:
    """(title, rows) per group: the application, the screen Help was opened from, then every
    other screen, widget and dialog."""
    out = [("Everywhere", rows_for(app, type(app)))]
    classes = binding_classes()
    if current in classes:
        classes.remove(current)
        classes.insert(0, current)
    for cls in classes:
        if cls is HelpScreen:
            continue
        rows = rows_for(app, cls)
        if rows:
            out.append((_title(cls), rows))
    out.append(("Help", rows_for(app, HelpScreen)))
    return out


class HelpScreen(Screen[None]):
    """Every key, by screen. Escape or q closes it."""

    HELP_TITLE = "Help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="ferry.help.close"),
    ]

    def __init__(self, current: type[DOMNode] | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static("Ferry — Keys", classes="screen-title")
        with VerticalScroll(id="help-body", can_focus=True):
            for title, rows in sections(self.app, self.current):
                yield Static(self._table(title, rows), classes="help-section")
        yield Static(
            "Remap any key in settings.toml: [keymap] \"binding.id\" = \"key\"",
            classes="hint",
        )
        yield status_bar()
        yield Footer(compact=True)

    def _table(self, title: str, rows: list[HelpRow]) -> Table:
        table = Table(
            title=Text(title, style="bold"), title_justify="left", show_header=False,
            box=None, padding=(0, 1), expand=True,
        )
        table.add_column("key", style="bold", no_wrap=True, min_width=12)
        table.add_column("does", ratio=1)
        table.add_column("id", style="dim", no_wrap=True, min_width=28)
        for row in rows:
            table.add_row(Text(row.keys), Text(row.description), Text(row.binding_id))
        return table

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.app.pop_screen()
