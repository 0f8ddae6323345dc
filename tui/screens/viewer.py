"""The text viewer (first 256 KiB of a file) and the file-info dialog (SHA-256 on request).

File contents come from servers: control characters (escape sequences included) are replaced
before display, and nothing is ever parsed as markup. A binary file is shown as a hex dump of
its first 64 KiB, with a note saying so; a truncated file says how much is shown. A DICOM file
(``DICM`` after the preamble, header within what was read) is shown as its header: a table of
tag, name, VR and value (backend/dicom/headerview.py), patient fields masked until ``p``.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, LoadingIndicator, Static, TextArea

from backend.dicom import headerview
from backend.errors import FerryError
from backend.names import display_name
from backend.remote import VIEW_LIMIT, RemoteEntry
from backend.sources import Source
from tui.widgets.file_pane import perms

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

HEX_LIMIT = 64 * 1024
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 4  # a character cut at the end is still text
    return False


def safe_text(data: bytes) -> str:
    """Decoded text with every control character except newline and tab replaced."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return _UNSAFE.sub("\ufffd", text)


def hex_dump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  {chars}")
    return "\n".join(lines)


def render_content(data: bytes, truncated: bool, size: int | None) -> tuple[str, str]:
    """(note, body) for the viewer."""
    kib = VIEW_LIMIT // 1024
    if looks_binary(data):
        shown = data[:HEX_LIMIT]
        note = f"binary file: first {len(shown):,} bytes shown as hex"
        if size is not None:
            note += f" (of {size:,})"
        return note, hex_dump(shown)
    note = ""
    if truncated:
        note = f"truncated: showing the first {kib} KiB"
        if size is not None:
            note += f" of {size:,} bytes"
    return note, safe_text(data)


class ViewerScreen(Screen[None]):
    """Read-only view of the head of one file."""

    HELP_TITLE = "File viewer"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f3", "close", "Close", id="ferry.viewer.close"),
        Binding("p", "toggle_patient", "Show patient", id="ferry.viewer.patient"),
    ]

    DEFAULT_CSS = """
    ViewerScreen .viewer-title {
        height: 1;
        background: $primary;
        color: $background;
        text-style: bold;
        padding: 0 1;
    }
    ViewerScreen .viewer-note {
        height: auto;
        color: $warning;
        padding: 0 1;
    }
    ViewerScreen TextArea, ViewerScreen DataTable {
        height: 1fr;
    }
    """

    def __init__(self, source: Source, path: str, entry: RemoteEntry | None = None) -> None:
        super().__init__()
        self.source = source
        self.path = path
        self.entry = entry
        self.note = ""
        self.dicom: Dataset | None = None  # the parsed header when the file is DICOM
        self.reveal = False  # patient fields shown in full

    def compose(self) -> ComposeResult:
        title = Text(f"{display_name(self.source.label)}: {display_name(self.path)}",
                     no_wrap=True, overflow="ellipsis")
        yield Static(title, classes="viewer-title")
        yield Static("", classes="viewer-note")
        yield LoadingIndicator()
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(exclusive=True, group="viewer", exit_on_error=False)
    async def _load(self) -> None:
        try:
            data, truncated = await self.source.read_head(self.path)
        except FerryError as exc:
            self.notify(exc.message, title="Cannot view", severity="error")
            self.dismiss()
            return
        size = self.entry.size if self.entry else None
        if headerview.looks_like_dicom(data):
            total = size if size is not None else len(data) + int(truncated)
            ds = headerview.parse_head(data, total)
            if ds is not None:
                self.dicom = ds
                await self._show_dicom()
                return
        self.note, body = render_content(data, truncated, size)
        await self.query_one(LoadingIndicator).remove()
        self.query_one(".viewer-note", Static).update(Text(self.note))
        area = TextArea(body, read_only=True, show_line_numbers=True, soft_wrap=False,
                        id="viewer-text")
        await self.mount(area, before=self.query_one(Footer))
        area.focus()

    def dicom_rows(self) -> list[headerview.HeaderRow]:
        if self.dicom is None:
            return []
        return headerview.header_rows(self.dicom, reveal=self.reveal)

    async def _show_dicom(self) -> None:
        rows = self.dicom_rows()
        masked = sum(1 for r in rows if r.sensitive)
        self.note = (f"DICOM header: {len(rows)} attributes (pixel data not shown); "
                     + ("patient fields shown in full, press p to mask them" if self.reveal
                        else f"{masked} patient field(s) masked, press p to show them"))
        for old in self.query(LoadingIndicator):
            await old.remove()
        self.query_one(".viewer-note", Static).update(Text(self.note))
        table: DataTable[Text] | None = next(self.query("#viewer-dicom").results(DataTable), None)
        if table is None:
            table = DataTable(id="viewer-dicom", cursor_type="row", zebra_stripes=True)
            table.add_columns("tag", "name", "VR", "value")
            await self.mount(table, before=self.query_one(Footer))
        else:
            table.clear()
        for r in rows:
            indent = "  " * r.depth + ("> " if r.depth else "")
            table.add_row(Text(r.tag), Text(display_name(indent + r.name)), Text(r.vr),
                          Text(display_name(r.value)))
        table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_patient":
            return self.dicom is not None
        return True

    async def action_toggle_patient(self) -> None:
        if self.dicom is None:
            return
        self.reveal = not self.reveal
        await self._show_dicom()

    def action_close(self) -> None:
        self.dismiss()


class FileInfoScreen(ModalScreen[None]):
    """Size, modified time, mode, link target; SHA-256 computed only when asked."""

    HELP_TITLE = "File info"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,i", "close", "Close", id="ferry.info.close"),
        Binding("c", "checksum", "SHA-256", id="ferry.info.checksum"),
    ]

    DEFAULT_CSS = """
    FileInfoScreen {
        align: center middle;
    }
    FileInfoScreen > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    FileInfoScreen .info-title {
        text-style: bold;
        margin-bottom: 1;
    }
    FileInfoScreen Horizontal {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    FileInfoScreen Button {
        margin-left: 1;
    }
    """

    def __init__(self, source: Source, path: str, entry: RemoteEntry) -> None:
        super().__init__()
        self.source = source
        self.path = path
        self.entry = entry
        self.digest: str | None = None

    def compose(self) -> ComposeResult:
        e = self.entry
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.mtime)) if e.mtime else "?"
        lines = [
            f"where:    {display_name(self.source.label)}:{display_name(self.path)}",
            f"kind:     {e.kind}",
            f"size:     {e.size:,} bytes",
            f"modified: {when}",
            f"mode:     {perms(e)} ({e.mode:04o})",
        ]
        if e.link_target:
            lines.append(f"target:   {display_name(e.link_target)}")
        with Vertical():
            yield Static(Text(display_name(e.name)), classes="info-title")
            for line in lines:
                yield Static(Text(line))
            yield Static(Text("sha256:   press c to compute"), id="info-sha")
            with Horizontal():
                if e.kind == "file":
                    yield Button("SHA-256", id="checksum")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "checksum":
            self.action_checksum()
        else:
            self.dismiss()

    def action_close(self) -> None:
        self.dismiss()

    def action_checksum(self) -> None:
        if self.entry.kind != "file":
            self.query_one("#info-sha", Static).update(Text("sha256:   only for regular files"))
            return
        self.query_one("#info-sha", Static).update(Text("sha256:   computing…"))
        self._checksum()

    @work(exclusive=True, group="checksum", exit_on_error=False)
    async def _checksum(self) -> None:
        try:
            self.digest = await self.source.sha256(self.path)
        except FerryError as exc:
            self.query_one("#info-sha", Static).update(Text(f"sha256:   {exc.message}"))
            return
        self.query_one("#info-sha", Static).update(Text(f"sha256:   {self.digest}"))
