"""``ConflictDialog``: F5/F6 found a name that already exists in the destination (WinSCP's
"file exists" question).

It shows both sides (size, modified) and offers the engine's six policies
(``backend.transfers.model.CONFLICT_POLICIES``; docs/transfers.md, "When the destination
exists") plus *apply to all*; the browser turns the answers into each job's ``on_conflict``
(tui/screens/browser.py). Keys 1-6 pick a policy at once, ``a`` toggles *apply to all*; Skip is
highlighted, so a stray Enter leaves the destination as it is. Escape (or Cancel) cancels the
whole copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, OptionList, Static
from textual.widgets.option_list import Option

from backend.remote import RemoteEntry
from backend.units import human_size
from tui.dialogs.base import FerryDialog
from tui.dialogs.text import plain

# (policy, label): the order of WinSCP's and the CLI's --on-conflict list (docs/cli.md)
POLICIES: tuple[tuple[str, str], ...] = (
    ("overwrite", "Overwrite"),
    ("newer", "Overwrite if newer"),
    ("size", "Overwrite if size differs"),
    ("resume", "Resume (replace only what differs; finish a partial copy)"),
    ("rename", "Rename (keep both: name (1).ext)"),
    ("skip", "Skip"),
)


@dataclass(frozen=True)
class ConflictChoice:
    policy: str  # one of CONFLICT_POLICIES
    apply_all: bool


def _side(label: str, entry: RemoteEntry | None) -> Text:
    from datetime import datetime

    if entry is None:
        return Text(f"{label} ?")
    kind = "folder" if entry.kind == "dir" else human_size(entry.size)
    when = (datetime.fromtimestamp(entry.mtime).strftime("%Y-%m-%d %H:%M")
            if entry.mtime is not None else "—")
    return Text(f"{label} {kind:>10}  modified {when}")


class ConflictDialog(FerryDialog["ConflictChoice | None"]):
    """``name`` exists in ``where``: which policy? ``others``: conflicts still to come."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(str(i), f"pick('{policy}')", label.split(" (")[0], show=False,
                  id=f"ferry.conflict.{policy}")
          for i, (policy, label) in enumerate(POLICIES, start=1)),
        Binding("a", "toggle_all", "Apply to all", show=False, id="ferry.conflict.all"),
    ]

    DEFAULT_CSS = """
    ConflictDialog #policies { height: auto; max-height: 8; margin-top: 1; }
    ConflictDialog #apply-all { margin-top: 1; }
    """

    def __init__(self, name: str, where: str, source: RemoteEntry | None,
                 existing: RemoteEntry | None, others: int = 0) -> None:
        super().__init__()
        self.name_text = name
        self.where = where
        self.source = source
        self.existing = existing
        self.others = others

    def compose(self) -> ComposeResult:
        folder = self.existing is not None and self.existing.kind == "dir"
        with Vertical(classes="dialog"):
            yield Static(plain(f"{self.name_text} already exists in {self.where}"),
                         classes="dialog-title")
            yield Static(_side("copying: ", self.source))
            yield Static(_side("existing:", self.existing))
            if folder:
                yield Static("A folder: the choice applies to each file in it that exists.")
            yield OptionList(
                *(Option(f"{i}  {label}", id=policy)
                  for i, (policy, label) in enumerate(POLICIES, start=1)),
                id="policies", compact=True,
            )
            with Horizontal(classes="dialog-buttons"):
                if self.others:
                    yield Checkbox(f"Apply to all ({self.others} more)", compact=True,
                                   id="apply-all")
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("OK", id="ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        options = self.query_one("#policies", OptionList)
        options.highlighted = len(POLICIES) - 1  # Skip: a stray Enter changes nothing
        options.focus()

    def _apply_all(self) -> bool:
        boxes = self.query("#apply-all")
        return bool(boxes) and boxes.first(Checkbox).value

    def action_pick(self, policy: str) -> None:
        self.dismiss(ConflictChoice(policy, self._apply_all()))

    def action_toggle_all(self) -> None:
        boxes = self.query("#apply-all")
        if boxes:
            box = boxes.first(Checkbox)
            box.value = not box.value

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_pick(event.option.id or "skip")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            options = self.query_one("#policies", OptionList)
            index = options.highlighted if options.highlighted is not None else -1
            self.action_pick(POLICIES[index][0])
        else:
            self.dismiss(None)
