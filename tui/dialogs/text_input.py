"""``TextInputDialog`` (one line of text, validated inline) and ``SecretDialog`` (masked)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from backend.errors import FerryError
from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain

Validator = Callable[[str], str | None]
"""Returns an error message for a bad value, ``None`` when it is fine."""

Apply = Callable[[str], Awaitable[object]]
"""Does what the value is for (create the folder...); a FerryError keeps the dialog open."""


class TextInputDialog(FerryDialog[str | None]):
    """Ask for one line of text. ``validator`` errors show under the field; Escape cancels.

    With ``apply`` the dialog also does the work (``await apply(value)``) and closes only when
    it succeeded: a :class:`FerryError` (the server refused, the name was taken meanwhile) is
    shown under the field like any validation error, so typing goes on into the field."""

    def __init__(
        self,
        title: str,
        value: str = "",
        placeholder: str = "",
        validator: Validator | None = None,
        *,
        password: bool = False,
        apply: Apply | None = None,
    ) -> None:
        super().__init__()
        self.apply = apply
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.validator = validator
        self.password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            yield Input(
                value=self.value,
                placeholder=self.placeholder,
                password=self.password,
                id="value",
            )
            yield Static("", id="error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def _submit(self) -> None:
        value = self.query_one("#value", Input).value
        problem = self.validator(value) if self.validator else None
        if problem:
            self.show_error(problem)
            return
        if self.apply is None:
            self.dismiss(value)
        else:
            self._apply(value)

    def show_error(self, problem: str) -> None:
        self.query_one("#error", Static).update(plain(problem))
        self.query_one("#value", Input).focus()

    @work(exclusive=True, group="text-input-apply")
    async def _apply(self, value: str) -> None:
        assert self.apply is not None
        try:
            await self.apply(value)
        except FerryError as exc:
            self.show_error(exc.message)
            return
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)


def _not_empty(value: str) -> str | None:
    return None if value else "enter a value, or press Escape to cancel"


class SecretDialog(TextInputDialog):
    """A masked input for a passphrase or password; the value is never shown or logged."""

    def __init__(self, title: str, validator: Validator | None = None) -> None:
        super().__init__(title, validator=validator or _not_empty, password=True)
