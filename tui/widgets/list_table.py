"""``ListTable``: a row-cursor DataTable with the list keys every Ferry list shares.

Textual's DataTable binds Home/End to *horizontal* scrolling; in a list of sites, jobs, shares,
cases or audit records they must jump to the first / last row, as in the browser's listings
(tui/widgets/file_pane.py ``FileTable``). No letters other than g / G: the screens bind them
(``k`` is "new key" on the Sites screen).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

LIST_BINDINGS: list[BindingType] = [
    Binding("home,g", "scroll_top", "First row", show=False, id="ferry.list.first"),
    Binding("end,G", "scroll_bottom", "Last row", show=False, id="ferry.list.last"),
]


class ListTable(DataTable[Any]):
    """A list (one row per item, row cursor): Home / g first row, End / G last."""

    HELP_TITLE = "Lists"
    BINDINGS: ClassVar[list[BindingType]] = LIST_BINDINGS
