"""``ListingView``: a table of any number of rows, drawn line by line, on public Textual API.

A line-API :class:`~textual.scroll_view.ScrollView` (as toolong draws its logs): the rows are
not stored here. The owner gives a row count and a function that builds the cells of row ``i``
(:meth:`ListingView.set_rows`); only the rows on screen are ever built and rendered, so
200,000 entries cost no more to show than 40 (tui/widgets/file_pane.py, bench/bench_tui.py).
Columns have fixed widths (the owner plans them); the header line stays put while the rows
scroll under it.

It looks and behaves like Textual's ``DataTable`` with a row cursor (its CSS, component
classes renamed ``listing--*``, and its keys): up/down, page up/down, first/last row, Enter or
a click on the cursor row selects it, a click on a header cell selects that column, the mouse
hovers rows. Messages: :class:`ListingView.RowHighlighted`, :class:`ListingView.RowSelected`,
:class:`ListingView.HeaderSelected`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cells = Sequence[RenderableType]
CELL_PADDING = 1  # cells either side of a cell's content, as DataTable(cell_padding=1)
_CACHE_LIMIT = 2000  # rendered lines kept (a few screens' worth, each style state)


class Layered:
    """``renderable`` with ``pre_style`` under its own styles and ``post_style`` over them (the
    cursor's colours win over a cell's), as DataTable layers its cells."""

    def __init__(self, renderable: RenderableType, pre_style: Style, post_style: Style) -> None:
        self.renderable, self.pre_style, self.post_style = renderable, pre_style, post_style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        return Segment.apply_style(console.render(self.renderable, options),
                                   style=self.pre_style, post_style=self.post_style)


@dataclass(frozen=True)
class Column:
    """One column: its key (messages name it), header label and content width in cells."""

    key: str
    label: Text
    width: int

    @property
    def render_width(self) -> int:
        return self.width + 2 * CELL_PADDING


class ListingView(ScrollView, can_focus=True):
    """Rows built on demand by the owner's ``cells(index)``; a row cursor; a fixed header."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "listing--header",
        "listing--cursor",
        "listing--hover",
        "listing--header-hover",
    }

    # DataTable's look (textual/widgets/_data_table.py DEFAULT_CSS), row cursor only.
    DEFAULT_CSS = """
    ListingView {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;

        &:focus {
            background-tint: $foreground 5%;
            & > .listing--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .listing--header {
                background-tint: $foreground 5%;
            }
        }
        & > .listing--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .listing--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .listing--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .listing--header-hover {
            background: $accent 30%;
        }
        & > .listing--hover {
            background: $block-hover-background;
        }
    }
    """

    # DataTable's keys. No descriptions: Help (tui/screens/help.py) lists every tui class's
    # described bindings, and these standard moves were never listed there (as DataTable's).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", show=False),
        Binding("up", "cursor_up", show=False),
        Binding("down", "cursor_down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("ctrl+home", "scroll_top", show=False),
        Binding("ctrl+end", "scroll_bottom", show=False),
    ]

    class RowHighlighted(Message):
        """The cursor moved to ``cursor_row`` (or the rows under it were replaced)."""

        def __init__(self, view: ListingView, cursor_row: int) -> None:
            super().__init__()
            self.view, self.cursor_row = view, cursor_row

        @property
        def control(self) -> ListingView:
            return self.view

    class RowSelected(Message):
        """Enter on a row, or a click on the row under the cursor."""

        def __init__(self, view: ListingView, cursor_row: int) -> None:
            super().__init__()
            self.view, self.cursor_row = view, cursor_row

        @property
        def control(self) -> ListingView:
            return self.view

    class HeaderSelected(Message):
        """A click on the header of column ``column_key``."""

        def __init__(self, view: ListingView, column_key: str, column_index: int) -> None:
            super().__init__()
            self.view, self.column_key, self.column_index = view, column_key, column_index

        @property
        def control(self) -> ListingView:
            return self.view

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: list[Column] = []
        self._count = 0
        self._cells: Callable[[int], Cells] = lambda index: ()
        self._cursor = 0
        self._hover = -1  # the row under the mouse (-1: the header), shown while _show_hover
        self._show_hover = False
        self._scroll_pending = False  # a scroll to the cursor waits for the first layout
        self._lines: dict[tuple[Any, ...], Strip] = {}

    # ------------------------------------------------------------------ contents

    @property
    def row_count(self) -> int:
        return self._count

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def set_columns(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self._changed()

    def set_rows(self, count: int, cells: Callable[[int], Cells], *, cursor: int = 0,
                 scroll_home: bool = False) -> None:
        """Show ``count`` rows, row ``i`` being ``cells(i)`` (called only while it is drawn),
        with the cursor on row ``cursor``; ``scroll_home``: from the top (a new folder), else
        the view scrolls no more than needed to show the cursor."""
        self._count = count
        self._cells = cells
        self._cursor = min(max(cursor, 0), max(count - 1, 0))
        self._changed()
        if scroll_home:
            self.scroll_to(0, 0, animate=False, force=True, immediate=True)
        self._scroll_cursor_into_view()
        if count:
            self.post_message(self.RowHighlighted(self, self._cursor))

    def clear(self) -> None:
        """No rows (the columns stay)."""
        self.set_rows(0, lambda index: (), scroll_home=True)

    def get_row_at(self, index: int) -> Cells:
        """The cells of row ``index`` (``str()`` of each is its text)."""
        if not 0 <= index < self._count:
            raise IndexError(f"row {index} of {self._count}")
        return self._cells(index)

    def refresh_row(self, index: int) -> None:
        """Draw row ``index`` again (its cells changed)."""
        for key in [k for k in self._lines if k[0] == index]:
            del self._lines[key]
        self.refresh_line(index + 1)

    def _changed(self) -> None:
        self._lines.clear()
        width = sum(column.render_width for column in self.columns)
        self.virtual_size = Size(width, self._count + 1)
        self.refresh()

    # ------------------------------------------------------------------ cursor

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """Put the cursor on ``row`` (kept within the rows) and show it."""
        row = min(max(row, 0), max(self._count - 1, 0))
        if row != self._cursor:
            old, self._cursor = self._cursor, row
            self.refresh_line(old + 1)
            self.refresh_line(row + 1)
            if self._count:
                self.post_message(self.RowHighlighted(self, row))
        if scroll:
            self._scroll_cursor_into_view(animate=animate)

    def _page_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)  # less the header

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        if not self.scrollable_content_region.height:  # not laid out (or hidden) yet
            if not self._scroll_pending:
                self._scroll_pending = True
                self.call_after_refresh(self._scroll_when_laid_out)
            return
        top = round(self.scroll_y)
        page = self._page_height()
        if self._cursor < top:
            top = self._cursor
        elif self._cursor >= top + page:
            top = self._cursor - page + 1
        else:
            return
        self.scroll_to(y=top, animate=animate, force=True, immediate=True)

    def _scroll_when_laid_out(self) -> None:
        self._scroll_pending = False
        self._scroll_cursor_into_view()

    def _keyboard(self) -> None:
        if self._show_hover:
            self._show_hover = False
            self.refresh_line(self._hover + 1)

    def action_cursor_up(self) -> None:
        self._keyboard()
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._keyboard()
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self._keyboard()
        page = self._page_height()
        self.scroll_to(y=self.scroll_y - page, animate=False, force=True, immediate=True)
        self.move_cursor(row=self._cursor - page)

    def action_page_down(self) -> None:
        self._keyboard()
        page = self._page_height()
        self.scroll_to(y=self.scroll_y + page, animate=False, force=True, immediate=True)
        self.move_cursor(row=self._cursor + page)

    def action_scroll_top(self) -> None:
        self._keyboard()
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self._keyboard()
        self.move_cursor(row=self._count - 1)

    def action_select_cursor(self) -> None:
        self._keyboard()
        if self._count:
            self.post_message(self.RowSelected(self, self._cursor))

    # ------------------------------------------------------------------ mouse

    def _row_at(self, event: events.MouseEvent) -> int | None:
        """The row under the mouse (-1: the header), or None (below the last row)."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        if offset.y == 0:
            return -1
        row = offset.y - 1 + round(self.scroll_y)
        return row if row < self._count else None

    def _column_at(self, x: int) -> int | None:
        x += round(self.scroll_x)
        for index, column in enumerate(self.columns):
            if x < column.render_width:
                return index
            x -= column.render_width
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        row = self._row_at(event)
        shown = row is not None
        if (row, shown) != (self._hover, self._show_hover):
            self.refresh_line(self._hover + 1)
            self._hover = row if row is not None else self._hover
            self._show_hover = shown
            self.refresh_line(self._hover + 1)

    def on_leave(self, event: events.Leave) -> None:
        if self._show_hover:
            self._show_hover = False
            self.refresh_line(self._hover + 1)

    async def on_click(self, event: events.Click) -> None:
        row = self._row_at(event)
        if row is None:
            return
        if row == -1:
            offset = event.get_content_offset(self)
            index = self._column_at(offset.x) if offset is not None else None
            if index is not None:
                self.post_message(self.HeaderSelected(self, self.columns[index].key, index))
            return
        event.stop()
        if row == self._cursor:
            self.post_message(self.RowSelected(self, row))
        else:
            self.move_cursor(row=row, animate=True)

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            row = -1
        else:
            row = y - 1 + round(self.scroll_y)
            if row >= self._count:
                return Strip.blank(width, base)
        cursor = row == self._cursor and row >= 0
        hover = self._show_hover and row == self._hover
        key = (row, cursor, hover, width, base, self.get_pseudo_class_state())
        strip = self._lines.get(key)
        if strip is None:
            if len(self._lines) > _CACHE_LIMIT:
                self._lines.clear()
            strip = self._render_row(row, base, cursor, hover, width)
            self._lines[key] = strip
        scroll_x = round(self.scroll_x)
        if scroll_x or strip.cell_length != width:
            return strip.crop_extend(scroll_x, scroll_x + width, base)
        return strip

    def _render_row(self, row: int, base: Style, cursor: bool, hover: bool,
                    width: int) -> Strip:
        """One row (-1: the header) as DataTable draws it: each cell padded and styled, then
        the rest of the line in the row's style. (Each cell's style carries DataTable's
        row/column meta, so equal-looking cells stay separate segments, as they were.)"""
        component = self.get_component_rich_style
        if row == -1:
            row_style = self.get_component_styles("listing--header").rich_style
            cells: Cells = [column.label for column in self.columns]
        else:
            row_style = base
            cells = self._cells(row)
        extra = Style()
        if hover:
            extra += component("listing--hover")
            if row == -1:
                extra += component("listing--header-hover")
        if cursor:
            extra += component("listing--cursor")
        post = Style.from_color(extra.color, extra.bgcolor)  # the cursor's colours win
        console, options = self.app.console, self.app.console_options
        segments: list[Segment] = []
        total = 0
        for index, column in enumerate(self.columns):
            cell = cells[index] if index < len(cells) else ""
            content = Text(cell, end="") if isinstance(cell, str) else cell
            lines = console.render_lines(
                Layered(Padding(content, (0, CELL_PADDING)),
                        row_style + Style.from_meta({"row": row, "column": index}) + extra,
                        post),
                options.update_dimensions(column.render_width, 1).update(no_wrap=True),
            )
            segments.extend(lines[0])
            total += column.render_width
        if width > total:
            meta = Style.from_meta({"row": row, "column": 0, "out_of_bounds": True})
            segments.append(Segment(" " * (width - total), row_style + extra + meta))
        return Strip(segments).adjust_cell_length(max(width, total), base).simplify()
