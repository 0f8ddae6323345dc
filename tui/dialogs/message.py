"""``MessageDialog``: read-only information (a public key to copy, negotiated algorithms,
import results). The body is selectable text; Enter or Escape closes it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static, TextArea

from tui.dialogs.base import FerryDialog
from tui.dialogs.text import join_lines, plain


class MessageDialog(FerryDialog[None]):
    """Show ``lines``; ``copy_text`` (e.g. a public key) goes in a read-only text area so it
    can be selected, and ``c`` copies it to the clipboard (OSC 52, works over SSH)."""

    DEFAULT_CSS = """
    MessageDialog #body { height: auto; max-height: 14; }
    MessageDialog TextArea { height: 5; }
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
                yield TextArea(self.copy_text, read_only=True, soft_wrap=True, id="copy")
            with Horizontal(classes="dialog-buttons"):
                if self.copy_text is not None:
                    yield Button("Copy", id="copy-button")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy-button" and self.copy_text is not None:
            self.app.copy_to_clipboard(self.copy_text)
            self.notify("Copied to the clipboard (if your terminal allows it).")
            return
        self.dismiss(None)
