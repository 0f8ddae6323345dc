"""``HostKeyDialog``: the trust decision for a host key (docs/architecture.md §4 item 1).

Unknown key: key type and SHA-256 fingerprint, Accept and save / Connect once / Cancel, with
Cancel focused. Changed key: a red security warning with the old and new fingerprints and
only Cancel; there is no way to proceed from here.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from backend.hostkeys import PresentedKey, TrustDecision
from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain


class HostKeyDialog(FerryDialog[TrustDecision]):
    DEFAULT_CSS = """
    HostKeyDialog .fingerprint { text-style: bold; }
    HostKeyDialog .warning { color: $error; text-style: bold; }
    """

    def __init__(
        self,
        site_name: str,
        presented_key: PresentedKey,
        changed: bool = False,
        old_fingerprints: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.site_name = site_name
        self.presented_key = presented_key
        self.changed = changed
        self.old_fingerprints = list(old_fingerprints or [])

    def cancel_result(self) -> TrustDecision:
        return TrustDecision.CANCEL

    def compose(self) -> ComposeResult:
        key = self.presented_key
        with Vertical(classes="dialog danger" if self.changed else "dialog", id="hostkey"):
            if self.changed:
                yield Static(
                    Text.assemble(
                        "WARNING: HOST KEY CHANGED for site ", plain(self.site_name), "!"
                    ),
                    classes="dialog-title warning",
                )
                yield Static(
                    "Someone may be intercepting the connection (man-in-the-middle), or the "
                    "server was reinstalled. Ferry will not connect. Ask the server's admin "
                    "for the new fingerprint and compare it before trusting it "
                    "('ferry sites trust').",
                    classes="warning",
                )
                for old in self.old_fingerprints:
                    yield Static(Text.assemble("pinned:  ", plain(old, "bold")))
                new = Text.assemble("server:  ", plain(key.fingerprint, "bold"))
                if key.key_type:
                    new.append(f"  ({key.key_type})")
                yield Static(new, id="new-fingerprint")
            else:
                yield Static(
                    Text.assemble("Unknown host key for site ", plain(self.site_name)),
                    classes="dialog-title",
                )
                yield Static(Text.assemble("key type:     ", plain(key.key_type)))
                yield Static(
                    Text.assemble("fingerprint:  ", plain(key.fingerprint, "bold")),
                    id="fingerprint",
                )
                yield Static(
                    "Compare the fingerprint with the one the server's admin gave you."
                )
            with Horizontal(classes="dialog-buttons"):
                if not self.changed:
                    yield Button("Accept and save", id="accept", variant="warning")
                    yield Button("Connect once", id="once")
                yield Button("Cancel", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        decision = {
            "accept": TrustDecision.ACCEPT_AND_SAVE,
            "once": TrustDecision.CONNECT_ONCE,
        }.get(event.button.id or "", TrustDecision.CANCEL)
        if self.changed:
            decision = TrustDecision.CANCEL
        self.dismiss(decision)
