"""``MessageDialog``: read-only information (a public key to copy, negotiated algorithms,
import results). The body is selectable text; Enter or Escape closes it.

``copy_text`` (a public key, a link) is shown on one unwrapped line, and the dialog widens to
fit it (up to the terminal's width), so selecting it with the mouse copies it whole; ``c`` or
the Copy button copies it (OSC 52) and says so inside the dialog, where notifications are not
drawn (docs/tui.md, "Notifications")."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static, TextArea

from tui.dialogs.base import FerryDialog
from tui.dialogs.text import join_lines, plain

COPIED = "Copied to the clipboard (if your terminal allows OSC 52; else select the line)."


def fit_width(longest: int, minimum: int = 76) -> int:
    """A dialog width that shows a ``longest``-cell line unwrapped (border + padding: 6)."""
    return max(minimum, longest + 6)


class MessageDialog(FerryDialog[None]):
    """Show ``lines``; ``copy_text`` (e.g. a public key) goes on one read-only line that can be
    selected, and ``c`` copies it to the clipboard (OSC 52, works over SSH)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy", id="ferry.message.copy"),
    ]

    DEFAULT_CSS = """
    MessageDialog #body { height: auto; max-height: 14; }
    MessageDialog #copy { height: 1; margin-top: 1; scrollbar-size-horizontal: 0; }
    MessageDialog #copied { height: auto; color: $success; }
    """

    def __init__(self, title: str, lines: list[str | Text], copy_text: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)
        self.copy_text = copy_text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            with VerticalScroll(id="body"):
                yield Static(join_lines(self.lines), id="message")
            if self.copy_text is not None:
                yield TextArea(self.copy_text, read_only=True, soft_wrap=False, compact=True,
                               show_cursor=False, id="copy")
                yield Static("", id="copied")
            with Horizontal(classes="dialog-buttons"):
                if self.copy_text is not None:
                    yield Button("Copy", id="copy-button")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        if self.copy_text is not None:
            # (+2: the text area's padding and its end-of-line cursor cell)
            self.query_one(".dialog").styles.width = fit_width(cell_len(self.copy_text) + 2)
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        if self.copy_text is None:
            return
        self.app.copy_to_clipboard(self.copy_text)
        self.query_one("#copied", Static).update(COPIED)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy-button":
            self.action_copy()
            return
        self.dismiss(None)
