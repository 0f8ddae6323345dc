"""The file list's table (tui/widgets/listing_view.py): rows built only while on screen, keys,
mouse, and Textual's public API only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult

from tests.tui import wait_for
from tests.tui.browser_kit import browser, local_dir, make_tree, names, register_site
from tui.app import FerryApp
from tui.widgets.listing_view import Column, ListingView

ROOT = Path(__file__).resolve().parents[2]


class ViewApp(App[None]):
    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.built: list[int] = []
        self.messages: list[tuple[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield ListingView()

    def cells(self, index: int) -> tuple[str, str]:
        self.built.append(index)
        return (f"row{index:07d}", str(index % 7))

    def on_mount(self) -> None:
        view = self.query_one(ListingView)
        view.set_columns([Column("name", Text("Name"), 20), Column("n", Text("N"), 3)])
        view.set_rows(self.count, self.cells)
        view.focus()

    def on_listing_view_row_selected(self, event: ListingView.RowSelected) -> None:
        self.messages.append(("selected", event.cursor_row))

    def on_listing_view_header_selected(self, event: ListingView.HeaderSelected) -> None:
        self.messages.append(("header", event.column_key))


def shown(view: ListingView) -> str:
    from textual.geometry import Region

    width, height = view.size
    return "\n".join(strip.text for strip in view.render_lines(Region(0, 0, width, height)))


async def test_a_million_rows_build_only_the_rows_on_screen() -> None:
    app = ViewApp(1_000_000)
    async with app.run_test(size=(40, 20)) as pilot:
        await pilot.pause()
        view = app.query_one(ListingView)
        assert view.row_count == 1_000_000
        assert "row0000000" in shown(view)
        assert len(set(app.built)) <= 20  # one screen, not a million
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert view.cursor_row == 999_999
        assert "row0999999" in shown(view)
        await pilot.press("pageup", "up")
        await pilot.pause()
        assert view.cursor_row < 999_999 - 15
        assert len(set(app.built)) <= 60
        await pilot.press("ctrl+home", "down", "enter")
        await pilot.pause()
        assert app.messages == [("selected", 1)]


async def test_mouse_moves_the_cursor_selects_and_picks_a_header() -> None:
    app = ViewApp(50)
    async with app.run_test(size=(40, 20)) as pilot:
        await pilot.pause()
        view = app.query_one(ListingView)
        await pilot.click(ListingView, offset=(3, 4))  # line 4: row 3 (the header is line 0)
        assert view.cursor_row == 3 and app.messages == []
        await pilot.click(ListingView, offset=(3, 4))  # a click on the cursor row selects it
        assert app.messages == [("selected", 3)]
        await pilot.click(ListingView, offset=(23, 0))  # the second column's header
        assert app.messages[-1] == ("header", "n")


async def test_browser_header_click_sorts_and_double_click_opens(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    local = local_dir(tmp_path, monkeypatch)
    make_tree(local, {"big.txt": b"x" * 5000, "small.txt": b"x", "sub": {"inner.txt": b"i"}})
    register_site(sftp_server)
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await browser(pilot)
        left = screen.left
        assert names(left) == ["sub/", "big.txt", "small.txt"]
        assert left.spec is not None and "size" in left.spec.keys
        x = left.spec.name + 2 + 1  # into the Size header (name column and its padding)
        await pilot.click(left.table, offset=(x, 0))
        await wait_for(pilot, lambda: left.sort_key == "size")
        assert names(left) == ["sub/", "small.txt", "big.txt"]
        await pilot.click(left.table, offset=(2, 1))  # "sub/": the cursor is already there
        await wait_for(pilot, lambda: left.path == str(local / "sub") and left.listed)
        assert names(left) == ["inner.txt"]


def test_tui_uses_no_private_textual_module() -> None:
    private = re.compile(r"\btextual\.(?:\w+\.)*_\w+")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tui").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
