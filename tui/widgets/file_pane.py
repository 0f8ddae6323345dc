"""``FilePane``: one side of the browser: path bar, listing table, filter field, status line.

Listings load in a worker (the table shows a loading indicator; the UI never waits on the
network). The table is a :class:`~tui.widgets.listing_view.ListingView`: it is given the number
of rows and builds the cells of a row only while the row is on screen, so 200,000 entries
appear as fast as 40 (bench/bench_tui.py). Every name is shown as a ``Text`` built from
:func:`backend.names.display_name`: never parsed as markup, control characters replaced; the
``\\xHH`` escapes of a name that is not UTF-8 (backend/names.py) are shown reversed.

Columns adapt to the pane's width (name first; then size, case state, modified, permissions
while the name keeps at least ``MIN_NAME`` cells). Sort by any column, filter as you type,
hidden files toggle, multi-select.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static

from backend.cases.layout import CaseMarker
from backend.errors import FerryError
from backend.names import display_name
from backend.remote import RemoteEntry
from backend.sources import Source
from backend.units import human_size
from tui.widgets.listing_view import Column, ListingView
from tui.widgets.path_bar import PathBar

MIN_NAME = 15
SORT_KEYS: tuple[str, ...] = ("name", "size", "mtime", "mode")
SORT_LABELS = {"name": "name", "size": "size", "mtime": "modified", "mode": "permissions"}
STATE_STYLES = {
    "new": "bold green",
    "results ready": "bold green",
    "results": "green",
    "processing": "yellow",
    "outgoing": "yellow",
    "archived": "dim",
}


def perms(entry: RemoteEntry) -> str:
    kind = {"dir": stat.S_IFDIR, "link": stat.S_IFLNK, "file": stat.S_IFREG}.get(entry.kind, 0)
    return stat.filemode(kind | entry.mode) if kind else "?" + stat.filemode(entry.mode)[1:]


def modified(entry: RemoteEntry, width: int) -> str:
    if entry.mtime is None:
        return ""
    fmt = "%Y-%m-%d %H:%M" if width >= 16 else "%Y-%m-%d"
    return time.strftime(fmt, time.localtime(entry.mtime))


def name_text(entry: RemoteEntry, marked: bool, width: int = 0) -> Text:
    """The name cell: literal text (never markup); folders bold with a trailing ``/``; cut in
    the middle to ``width`` (0: never)."""
    style = {"dir": "bold", "link": "italic", "other": "dim"}.get(entry.kind, "")
    suffix = {"dir": "/", "link": "@"}.get(entry.kind, "")
    shown = fit_name(display_name(entry.name) + suffix, width - (2 if marked else 0))
    text = Text(shown, style=style, no_wrap=True, overflow="ellipsis")
    if not entry.utf8:  # the \xHH escapes of a name that is not UTF-8 stand out
        text.highlight_regex(r"\\x[0-9a-f]{2}", "reverse")
    if marked:
        text = Text.assemble(("✔ ", "bold reverse"), text, no_wrap=True, overflow="ellipsis")
    return text


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns are shown, with their widths (cells)."""

    name: int
    size: int = 0
    state: int = 0
    mtime: int = 0
    mode: int = 0

    @property
    def keys(self) -> list[str]:
        return [k for k in ("name", "state", "size", "mtime", "mode") if getattr(self, k)]


SIZE_WIDTH = 5  # "<DIR>", "99.9K", "1023B": human_size never needs more
NAME_NEED_CAP = 24  # a longer name may be cut (in the middle) to make room for a column


def plan_columns(width: int, with_state: bool, name_need: int = MIN_NAME,
                 state_width: int = 13) -> ColumnSpec:
    """Fit the optional columns into ``width`` cells (2 cells of padding per column).

    The case state and size come first and only need the name to keep :data:`MIN_NAME` (a
    longer name is then cut in the middle, keeping its end: ``CASE-20261…18-0031/``); the
    modified time (date only when tight) and permissions are added only while the name keeps
    ``name_need`` (the longest name shown, at most :data:`NAME_NEED_CAP`), so at 80 columns
    case names stay whole instead of the date column taking their room. ``state_width``: the
    longest state shown.
    """
    need = min(max(name_need, MIN_NAME), NAME_NEED_CAP)
    wanted: list[tuple[str, int, int]] = (
        [("state", max(state_width, 5), MIN_NAME)] if with_state else []
    )
    wanted += [("size", SIZE_WIDTH, MIN_NAME), ("mtime", 16, max(20, need)),
               ("mode", 10, max(26, need))]
    chosen: dict[str, int] = {}
    used = 2  # the name column's padding
    for key, w, keep in wanted:
        if width - used - (w + 2) >= keep:
            chosen[key] = w
            used += w + 2
        elif key == "mtime" and width - used - 12 >= need:
            chosen[key] = 10
            used += 12
    return ColumnSpec(name=max(width - used, MIN_NAME), **chosen)


def in_name_order(entries: list[RemoteEntry]) -> bool:
    """True when ``entries`` are folders first, each group by lower-cased name (the order the
    pane shows for "name ▲"); checked pair by pair, keeping no key per entry."""
    return all(
        (a.kind != "dir", a.name.lower()) <= (b.kind != "dir", b.name.lower())
        for a, b in pairwise(entries)
    )


def fit_name(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` cells when longer (case names differ at the
    end: ``CASE-20261118-0031`` and ``…-0032`` must stay apart)."""
    if width <= 0 or cell_len(text) <= width:
        return text
    tail = min(max(width // 3, 1), 8)
    head = width - tail - 1
    return f"{text[:head]}…{text[-tail:]}" if head > 0 else text[: width - 1] + "…"


class FileTable(ListingView):
    """The listing table with file-manager keys (hjkl, Enter, Backspace, Space...)."""

    HELP_TITLE = "Browser: file list"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="ferry.browser.down"),
        Binding("k", "cursor_up", "Up", show=False, id="ferry.browser.up"),
        Binding("home,g", "scroll_top", "First entry", show=False, id="ferry.browser.first"),
        Binding("end,G", "scroll_bottom", "Last entry", show=False, id="ferry.browser.last"),
        Binding(
            "left,h,backspace", "pane_up", "Parent folder", show=False, id="ferry.browser.parent"
        ),
        Binding("right,l", "pane_open", "Open", show=False, id="ferry.browser.open"),
        Binding("space", "pane_mark", "Select", show=False, id="ferry.browser.select"),
        Binding("slash", "pane_filter", "Filter", id="ferry.browser.filter"),
        Binding("full_stop", "pane_hidden", "Hidden files", show=False, id="ferry.browser.hidden"),
        Binding("s", "pane_sort", "Sort", show=False, id="ferry.browser.sort"),
        Binding("S", "pane_reverse", "Reverse sort", show=False, id="ferry.browser.reverse"),
        Binding(
            "asterisk", "pane_mark_all", "Select all", show=False, id="ferry.browser.select_all"
        ),
        Binding("tilde", "pane_home", "Initial folder", show=False, id="ferry.browser.home"),
        Binding("ctrl+r", "pane_reload", "Reload", show=False, id="ferry.browser.reload"),
    ]

    @property
    def pane(self) -> FilePane:
        return self.query_ancestor(FilePane)

    def on_resize(self, event: Resize) -> None:
        self.pane.fit_columns()

    def action_pane_up(self) -> None:
        self.pane.go_up()

    def action_pane_open(self) -> None:
        self.pane.open_current()

    def action_pane_mark(self) -> None:
        self.pane.toggle_mark()

    def action_pane_mark_all(self) -> None:
        self.pane.mark_all()

    def action_pane_filter(self) -> None:
        self.pane.start_filter()

    def action_pane_hidden(self) -> None:
        self.pane.toggle_hidden()

    def action_pane_sort(self) -> None:
        self.pane.cycle_sort()

    def action_pane_reverse(self) -> None:
        self.pane.reverse_sort()

    def action_pane_home(self) -> None:
        self.pane.go_home()

    def action_pane_reload(self) -> None:
        self.pane.reload()


class FilterInput(Input):
    HELP_TITLE = "Browser: filter field"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", id="ferry.browser.filter_clear"),
        Binding("down", "done_filter", "To list", show=False, id="ferry.browser.filter_done"),
    ]

    def allow_focus(self) -> bool:
        # Hidden, it must never take keys: a space typed while the list was loading once
        # landed here and filtered the whole listing away.
        return self.has_class("-shown") and super().allow_focus()

    def action_clear_filter(self) -> None:
        self.query_ancestor(FilePane).end_filter(clear=True)

    def action_done_filter(self) -> None:
        self.query_ancestor(FilePane).end_filter(clear=False)


class FilePane(Vertical):
    """A listing of one folder of one :class:`Source`."""

    DEFAULT_CSS = """
    FilePane {
        width: 1fr;
        height: 1fr;
        border: round $panel-lighten-2;
    }
    FilePane.-active {
        border: round $primary;
    }
    FilePane FileTable {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    FilePane FilterInput, FilePane FilterInput:focus {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $primary 30%;
    }
    FilePane FilterInput.-shown {
        display: block;
    }
    FilePane .pane-status {
        height: 1;
        color: $foreground-muted;
        padding: 0 1;
    }
    """

    class Loaded(Message):
        """A folder was listed and shown."""

        def __init__(self, pane: FilePane, path: str, count: int) -> None:
            super().__init__()
            self.pane, self.path, self.count = pane, path, count

    class FileOpened(Message):
        """Enter on a file (the screen opens the viewer)."""

        def __init__(self, pane: FilePane, entry: RemoteEntry) -> None:
            super().__init__()
            self.pane, self.entry = pane, entry

    def __init__(self, source: Source | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = source
        self.path = source.home if source else ""
        self.entries: list[RemoteEntry] = []
        self.rows: list[RemoteEntry] = []
        self.markers: dict[str, CaseMarker] = {}
        self.marked: set[str] = set()
        self.rejected: list[str] = []
        self.filter_text = ""
        self.show_hidden = False
        self.sort_key = "name"
        self.sort_reverse = False
        self.spec: ColumnSpec | None = None
        self._longest: tuple[list[RemoteEntry], int] | None = None  # (entries, longest name)
        self.listed = False  # True once the folder being loaded is shown
        self._focus_when_shown = False  # focus_table() was asked while the table was loading
        self.last_render_seconds = 0.0
        # perf_counter stamps of the last load: requested, listed (data arrived), shown (painted)
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ composition

    def compose(self) -> ComposeResult:
        yield PathBar(self.source.label if self.source else "", self.path)
        yield FileTable()
        yield FilterInput(placeholder="filter (Esc clears)", compact=True)
        yield Static("", classes="pane-status")

    @property
    def table(self) -> FileTable:
        return self.query_one(FileTable)

    def on_mount(self) -> None:
        if self.source is None:
            self.table.loading = True
            self.query_one(PathBar).set_location("…", "", "connecting…")
        else:
            self.load(self.source.home)

    def set_source(self, source: Source) -> None:
        """Show ``source`` (from its initial folder); selection and filter start afresh."""
        self.source = source
        self.marked.clear()
        self.filter_text = ""
        self.query_one(FilterInput).value = ""
        self.query_one(FilterInput).remove_class("-shown")
        self.load(source.home)

    def show_connecting(self, label: str) -> None:
        """Drop the current source (the browser is switching this pane to ``label``) and show
        "connecting…" until :meth:`set_source`; a listing still on its way is discarded."""
        self.workers.cancel_group(self, "listing")
        self.source = None
        self.path = ""
        self.entries, self.rows, self.markers = [], [], {}
        self.marked.clear()
        self.listed = False
        self.table.clear()
        self.table.loading = True
        self.query_one(PathBar).set_location(label, "", "connecting…")
        self.query_one(".pane-status", Static).update("")

    def show_not_connected(self, label: str, message: str) -> None:
        """The connection for :meth:`show_connecting` failed: say so in the pane."""
        self.table.loading = False
        self.query_one(PathBar).set_location(label, "", "not connected")
        self.query_one(".pane-status", Static).update(
            Text(f"not connected: {display_name(message)}", no_wrap=True, overflow="ellipsis")
        )

    def set_active(self, active: bool) -> None:
        self.set_class(active, "-active")
        self.query_one(PathBar).set_class(active, "-active")

    def focus_table(self) -> None:
        """Focus the listing; while it is loading (Textual refuses focus then) focus it as
        soon as the listing is shown."""
        self._focus_when_shown = self.table.loading
        self.table.focus()

    # ------------------------------------------------------------------ loading

    def load(self, path: str, focus_name: str | None = None) -> None:
        if self.source is None:
            return
        self.listed = False
        self.timings = {"requested": time.perf_counter()}
        self.table.loading = True
        self.query_one(PathBar).set_location(self.source.label, path, "loading…")
        self._load_worker(path, focus_name)

    def reload(self, focus_name: str | None = None) -> None:
        """List the current folder again; the cursor stays on the entry it is on when the new
        listing arrives (or moves to ``focus_name``)."""
        self.load(self.path, focus_name)

    @work(exclusive=True, group="listing", exit_on_error=False)
    async def _load_worker(self, path: str, focus_name: str | None) -> None:
        source = self.source
        assert source is not None
        try:
            listing = await source.list(path)
            self.timings["listed"] = time.perf_counter()
            markers = await source.markers(path, listing.entries)
        except FerryError as exc:
            self.table.loading = False
            self._focus_if_asked()
            self.query_one(PathBar).set_location(source.label, self.path)
            self.notify(exc.message, title="Listing failed", severity="error", timeout=8)
            self.listed = True
            return
        new_folder = listing.path != self.path
        if path != self.path:
            self.marked.clear()
            self.filter_text = ""
            self.query_one(FilterInput).value = ""
            self.query_one(FilterInput).remove_class("-shown")
        self.path = listing.path
        self.entries = listing.entries
        self.markers = markers
        self.rejected = listing.rejected
        if self.marked:
            self.marked &= {e.name for e in listing.entries}
        self.query_one(PathBar).set_location(source.label, self.path)
        self.table.loading = False
        self.refresh_rows(focus_name=focus_name, scroll_home=new_folder)
        self._focus_if_asked()
        self.listed = True
        self.call_after_refresh(self._painted)
        if listing.rejected:
            self.notify(
                f"{len(listing.rejected)} name(s) not shown, Ferry cannot use them safely "
                f"(rename them on the server): {listing.rejected[0]}",
                title="Listing",
                severity="warning",
            )
        self.post_message(self.Loaded(self, self.path, len(self.entries)))

    def _focus_if_asked(self) -> None:
        if not self._focus_when_shown:
            return
        self._focus_when_shown = False
        focused = self.screen.focused
        hidden = focused is not None and not all(
            node.display for node in focused.ancestors_with_self if isinstance(node, Widget)
        )
        if focused is None or hidden or self in focused.ancestors_with_self:
            self.table.focus()  # nobody took the focus meanwhile, or a hidden widget did

    def _painted(self) -> None:
        self.timings["shown"] = time.perf_counter()

    # ------------------------------------------------------------------ rows

    def visible_entries(self) -> list[RemoteEntry]:
        entries: Iterable[RemoteEntry] = self.entries
        if not self.show_hidden:
            entries = (e for e in entries if not e.name.startswith("."))
        if self.filter_text:
            needle = self.filter_text.lower()
            entries = (e for e in entries if needle in e.name.lower())
        key = self.sort_key
        if key == "name" and not self.sort_reverse and in_name_order(self.entries):
            # listings arrive in this order (backend/remote.py, backend/localfs.py): no sort,
            # no key per entry (a folder of 200,000)
            return list(entries)
        if key == "name":
            sort_key: Any = lambda e: e.name.lower()  # noqa: E731
        elif key == "size":
            sort_key = lambda e: (e.size, e.name.lower())  # noqa: E731
        elif key == "mtime":
            sort_key = lambda e: (e.mtime or 0, e.name.lower())  # noqa: E731
        else:
            sort_key = lambda e: (e.mode, e.name.lower())  # noqa: E731
        ordered = sorted(entries, key=sort_key, reverse=self.sort_reverse)
        return [e for e in ordered if e.kind == "dir"] + [e for e in ordered if e.kind != "dir"]

    def _cells(self, entry: RemoteEntry, spec: ColumnSpec) -> tuple[Any, ...]:
        """The cells of ``entry``'s row, built when the row is drawn (never for all rows)."""
        cells: list[Any] = [name_text(entry, entry.name in self.marked, spec.name)]
        if spec.state:
            marker = self.markers.get(entry.name)
            cells.append(
                Text(marker.state, style=STATE_STYLES.get(marker.state, "")) if marker else ""
            )
        if spec.size:  # plain strings of our own making: no markup can occur in them
            shown = "<DIR>" if entry.kind == "dir" else human_size(entry.size, compact=True)
            cells.append(shown.rjust(spec.size))
        if spec.mtime:
            cells.append(modified(entry, spec.mtime))
        if spec.mode:
            cells.append(perms(entry))
        return tuple(cells)

    def _table_width(self) -> int:
        width = self.table.size.width or max(self.size.width - 2, 0)
        return max(width - 1, MIN_NAME + 2)  # the vertical scrollbar

    def _longest_name(self) -> int:
        """The longest name shown (cells), measured once per listing (a resize re-plans the
        columns without walking 200,000 names again)."""
        if self._longest is None or self._longest[0] is not self.entries:
            longest = max((len(display_name(e.name)) + (e.kind in ("dir", "link"))
                           for e in self.entries), default=0)
            self._longest = (self.entries, longest)
        return self._longest[1]

    def _plan(self) -> ColumnSpec:
        state = max((len(m.state) for m in self.markers.values()), default=0)
        return plan_columns(self._table_width(), bool(self.markers), self._longest_name(), state)

    def _ensure_columns(self) -> bool:
        spec = self._plan()
        if spec == self.spec:
            return False
        self.spec = spec
        headers = {"name": "Name", "state": "State", "size": "Size", "mtime": "Modified",
                   "mode": "Perms"}
        columns = []
        for key in spec.keys:
            label = headers[key]
            if key == self.sort_key:
                label += " ▼" if self.sort_reverse else " ▲"
            columns.append(Column(key, Text(label), getattr(spec, key)))
        self.table.set_columns(columns)
        return True

    def refresh_rows(self, focus_name: str | None = None, *, scroll_home: bool = False) -> None:
        """Show ``entries`` again (filtered, sorted, columns re-planned); the cursor stays on
        the entry it is on (or moves to ``focus_name``); ``scroll_home``: a new folder."""
        started = time.perf_counter()
        table = self.table
        if focus_name is None and self.rows and 0 <= table.cursor_row < len(self.rows):
            focus_name = self.rows[table.cursor_row].name
        self.spec = None  # headers carry the sort arrow: rebuild them
        self._ensure_columns()
        spec = self.spec
        assert spec is not None
        rows = self.rows = self.visible_entries()
        cursor = 0
        if focus_name is not None:
            cursor = next((i for i, e in enumerate(rows) if e.name == focus_name), 0)
        table.set_rows(len(rows), lambda index: self._cells(rows[index], spec), cursor=cursor,
                       scroll_home=scroll_home)
        self._update_status()
        self.last_render_seconds = time.perf_counter() - started

    def fit_columns(self) -> None:
        """Re-plan the columns for the table's current width (rebuild only if they change).

        The rebuild goes through :meth:`refresh_rows`, which notes the entry under the cursor
        before clearing the table (clearing it first put the cursor back on the first row,
        under the user's next key).
        """
        if self.entries and self._plan() != self.spec:
            self.refresh_rows()

    def _update_status(self) -> None:
        parts = [f"{len(self.rows)}/{len(self.entries)} items"]
        if self.marked:
            parts.append(f"{len(self.marked)} selected")
        if self.filter_text:
            parts.append(f"filter: {display_name(self.filter_text)}")
        if self.show_hidden:
            parts.append("hidden shown")
        arrow = "▼" if self.sort_reverse else "▲"
        parts.append(f"sort: {SORT_LABELS[self.sort_key]} {arrow}")
        entry = self.current_entry()
        if entry is not None:
            marker = self.markers.get(entry.name)
            if marker is not None:
                parts.append(marker.detail)
            elif entry.kind == "link" and entry.link_target:
                parts.append(f"→ {entry.link_target}")
        self.query_one(".pane-status", Static).update(Text(" · ".join(parts), no_wrap=True,
                                                           overflow="ellipsis"))

    @on(ListingView.RowHighlighted)
    def _on_highlight(self, event: ListingView.RowHighlighted) -> None:
        self._update_status()

    @on(ListingView.RowSelected)
    def _on_selected(self, event: ListingView.RowSelected) -> None:
        event.stop()
        self.open_current()

    # ------------------------------------------------------------------ queries

    def current_entry(self) -> RemoteEntry | None:
        if not self.rows:
            return None
        row = self.table.cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def chosen(self) -> list[RemoteEntry]:
        """The selected entries, or the one under the cursor when none is selected."""
        if self.marked:
            return [e for e in self.entries if e.name in self.marked]
        entry = self.current_entry()
        return [entry] if entry is not None else []

    def path_of(self, entry: RemoteEntry) -> str:
        assert self.source is not None
        return self.source.join(self.path, entry.name)

    # ------------------------------------------------------------------ actions

    def open_current(self) -> None:
        entry = self.current_entry()
        if entry is None or self.source is None:
            return
        if entry.kind == "dir":
            self.load(self.path_of(entry))
        elif entry.kind == "link":
            self.notify(
                "symbolic links are not followed; open the target's folder instead",
                severity="warning",
            )
        else:
            self.post_message(self.FileOpened(self, entry))

    def go_up(self) -> None:
        if self.source is None:
            return
        parent = self.source.parent(self.path)
        if parent != self.path:
            child = self.path.rstrip("/").rsplit("/", 1)[-1]
            self.load(parent, focus_name=child)

    def go_home(self) -> None:
        if self.source is not None:
            self.load(self.source.home)

    def toggle_mark(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.name in self.marked:
            self.marked.discard(entry.name)
        else:
            self.marked.add(entry.name)
        row = self.table.cursor_row
        self.table.refresh_row(row)
        if row + 1 < len(self.rows):
            self.table.move_cursor(row=row + 1)
        self._update_status()

    def mark_all(self) -> None:
        names = {e.name for e in self.rows}
        self.marked = set() if names <= self.marked else names
        self.refresh_rows()

    def toggle_hidden(self) -> None:
        self.show_hidden = not self.show_hidden
        self.refresh_rows()

    def cycle_sort(self) -> None:
        index = SORT_KEYS.index(self.sort_key)
        self.sort_key = SORT_KEYS[(index + 1) % len(SORT_KEYS)]
        self.refresh_rows()
        self.notify(f"sorted by {SORT_LABELS[self.sort_key]}", timeout=2)

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if key == self.sort_key and reverse is None:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key = key
            self.sort_reverse = bool(reverse)
        self.refresh_rows()

    def reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_rows()

    @on(ListingView.HeaderSelected)
    def _on_header(self, event: ListingView.HeaderSelected) -> None:
        event.stop()
        key = event.column_key
        self.sort_by("name" if key == "state" else key)

    def start_filter(self) -> None:
        field = self.query_one(FilterInput)
        field.add_class("-shown")
        field.focus()

    def end_filter(self, *, clear: bool) -> None:
        field = self.query_one(FilterInput)
        if clear:
            field.value = ""
            self.filter_text = ""
            field.remove_class("-shown")
            self.refresh_rows()
        elif not field.value:
            field.remove_class("-shown")
        self.table.focus()

    @on(Input.Changed)
    def _on_filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value != self.filter_text:
            self.filter_text = event.value
            self.refresh_rows()

    @on(Input.Submitted)
    def _on_filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.end_filter(clear=False)
