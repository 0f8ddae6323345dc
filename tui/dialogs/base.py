"""The base of every Ferry dialog: a typed modal that can also be awaited from any coroutine.

``await ask(app, dialog)`` pushes ``dialog`` and returns what it was dismissed with. Unlike
``push_screen(wait_for_dismiss=True)`` it works outside workers and never routes the result
through the caller's message queue, so a screen awaiting a dialog in a handler cannot deadlock.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, TypeVar

from textual.app import App
from textual.await_complete import AwaitComplete
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen

T = TypeVar("T")


class FerryDialog(ModalScreen[T]):
    """A modal dialog: Escape cancels (dismisses with :meth:`cancel_result`)."""

    HELP_TITLE = "Dialogs"

    DEFAULT_CSS = """
    FerryDialog {
        align: center middle;
    }
    FerryDialog > .dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    FerryDialog > .dialog.danger {
        border: thick $error;
    }
    FerryDialog .dialog-title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    FerryDialog .dialog-buttons {
        height: auto;
        width: 100%;
        align-horizontal: right;
        margin-top: 1;
    }
    FerryDialog .dialog-buttons Button {
        margin-left: 1;
    }
    FerryDialog .field-error {
        color: $error;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="ferry.dialog.cancel")
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiter: asyncio.Future[T | None] | None = None

    def cancel_result(self) -> T | None:
        return None

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_result())

    def dismiss(self, result: T | None = None) -> AwaitComplete:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(result)
        return super().dismiss(result)


async def ask(app: App[Any], dialog: FerryDialog[T]) -> T | None:
    """Show ``dialog`` and wait for its result (usable from any task, worker or handler); None
    when it was dismissed without one (as Textual's ``dismiss()``)."""
    waiter: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
    dialog._waiter = waiter
    app.push_screen(dialog)
    return await waiter
