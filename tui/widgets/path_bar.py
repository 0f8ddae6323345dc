"""``PathBar``: one line above a file pane saying where it is (source label and path).

Paths come from servers, so they are shown through :func:`backend.names.display_name` inside a
``Text`` object: never parsed as markup, control characters replaced.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from backend.names import display_name


class PathBar(Static):
    """``local  /home/me/cases`` or ``demo  /idt/From_IDT``; truncated from the left."""

    DEFAULT_CSS = """
    PathBar {
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    PathBar.-active {
        background: $primary;
        color: $background;
        text-style: bold;
    }
    """

    def __init__(self, label: str = "", path: str = "", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.label = label
        self.path = path
        self.loading_note = ""

    def set_location(self, label: str, path: str, note: str = "") -> None:
        self.label, self.path, self.loading_note = label, path, note
        self._render_bar()

    def on_resize(self) -> None:
        self._render_bar()

    def _render_bar(self) -> None:
        label = display_name(self.label)
        path = display_name(self.path)
        note = f"  {self.loading_note}" if self.loading_note else ""
        room = max(self.size.width - 2 - len(label) - 2 - len(note), 8)
        if len(path) > room:
            path = "…" + path[-(room - 1):]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, style="bold")
        text.append("  ")
        text.append(path)
        if note:
            text.append(note, style="italic")
        self.update(text)
