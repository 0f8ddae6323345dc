"""``ConfirmDialog``: says exactly what will happen, returns True only on an explicit yes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain


class ConfirmDialog(FerryDialog[bool]):
    """Lists ``lines`` (what will happen). Cancel always has the focus, so a stray Enter never
    deletes, moves or archives anything (every confirmation is for something that changes
    files); with ``danger`` the border and the confirm button are red."""

    def __init__(
        self, title: str, lines: list[str], danger: bool = False, confirm_label: str = "OK"
    ) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)
        self.danger = danger
        self.confirm_label = confirm_label

    def cancel_result(self) -> bool:
        return False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog danger" if self.danger else "dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            for line in self.lines:
                yield Static(plain(line), classes="confirm-line")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(
                    self.confirm_label,
                    id="confirm",
                    variant="error" if self.danger else "primary",
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")
