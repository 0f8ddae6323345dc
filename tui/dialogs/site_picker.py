"""``SitePickerDialog``: choose what one browser pane shows — local files or a saved site.

Returns a :class:`PaneChoice` (``site=None`` means local files) or ``None`` when cancelled.
Site names and hosts come from the user's sites.toml and are shown as plain ``Text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from backend.sites.model import Site
from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain

LOCAL_ID = "local"


@dataclass(frozen=True)
class PaneChoice:
    site: str | None  # None: local files


class SitePickerDialog(FerryDialog[PaneChoice | None]):
    """``Local files`` first, then every saved site (name, user@host:port); the pane's
    current choice is highlighted. Enter opens, Escape cancels."""

    DEFAULT_CSS = """
    SitePickerDialog OptionList { height: auto; max-height: 14; }
    """

    def __init__(self, title: str, sites: list[Site], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.sites = list(sites)
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(Text("Local files", style="bold"), id=LOCAL_ID)]
        for i, site in enumerate(self.sites):
            where = f"  {site.user}@{site.host}" + (f":{site.port}" if site.port != 22 else "")
            options.append(Option(Text.assemble(plain(site.name, "bold"), plain(where)),
                                  id=f"site-{i}"))
        with Vertical(classes="dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            yield OptionList(*options, id="choices")
            if not self.sites:
                yield Static("No saved sites yet: add one on the Sites screen (a).")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Open", id="open", variant="primary")

    def on_mount(self) -> None:
        choices = self.query_one("#choices", OptionList)
        names = [s.name for s in self.sites]
        choices.highlighted = names.index(self.current) + 1 if self.current in names else 0
        choices.focus()

    def _choice(self, index: int | None) -> PaneChoice | None:
        if index is None:
            return None
        if index == 0:
            return PaneChoice(site=None)
        return PaneChoice(site=self.sites[index - 1].name)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self._choice(event.option_index))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "open":
            self.dismiss(self._choice(self.query_one("#choices", OptionList).highlighted))
        else:
            self.dismiss(None)
