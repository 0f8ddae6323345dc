"""Ferry's dialogs: typed ``ModalScreen[T]`` subclasses shared by every screen.

``await ask(app, dialog)`` shows one and returns its result from any coroutine; from a
handler, ``app.push_screen(dialog, callback)`` works as usual.
"""

from tui.dialogs.base import FerryDialog, ask
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.host_key import HostKeyDialog
from tui.dialogs.message import MessageDialog
from tui.dialogs.text_input import SecretDialog, TextInputDialog

__all__ = [
    "ConfirmDialog",
    "FerryDialog",
    "HostKeyDialog",
    "MessageDialog",
    "SecretDialog",
    "TextInputDialog",
    "ask",
]
