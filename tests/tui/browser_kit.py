"""Helpers for the browser/queue TUI tests: a site on the in-process server, an open browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tests.tui import save_site, wait_for
from tui.screens.browser import BrowserScreen
from tui.widgets.file_pane import FilePane


def register_site(server: Any, name: str = "lab", **changes: Any) -> str:
    save_site(server.site(name, **changes))
    return name


def local_dir(tmp_path: Path, monkeypatch: Any) -> Path:
    """A local folder the browser's left pane opens on (it starts in the cwd)."""
    path = tmp_path / "local"
    path.mkdir(exist_ok=True)
    monkeypatch.chdir(path)
    return path


async def browser(pilot: Pilot[Any]) -> BrowserScreen:
    """Wait until the browser is up and both panes have listed their folders."""
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, BrowserScreen)
        and pilot.app.screen.right.source is not None
        and pilot.app.screen.right.listed
        and pilot.app.screen.left.listed
        and pilot.app.screen.focused is not None  # keys would go nowhere
    )
    await pilot.pause()
    return pilot.app.screen  # type: ignore[return-value]


def names(pane: FilePane) -> list[str]:
    """The names shown in the pane's table, in display order, as rendered text."""
    table = pane.table
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def screen_lines(widget: Any) -> list[str]:
    """What ``widget`` shows on screen right now, line by line, as plain text."""
    from textual.geometry import Region

    width, height = widget.size
    return [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


async def loaded(pilot: Pilot[Any], pane: FilePane, path: str) -> None:
    await wait_for(
        pilot,
        lambda: pane.path == path and not pane.table.loading and pane.listed
    )
    await pilot.pause()


async def goto(pilot: Pilot[Any], pane: FilePane, name: str) -> None:
    """Put the cursor on ``name`` once it is shown (fails if it never is): right after a
    ``reload()`` the pane may still be the old listing, or cleared for the new one."""
    await wait_for(pilot, lambda: name in [e.name for e in pane.rows])
    index = [e.name for e in pane.rows].index(name)
    pane.table.move_cursor(row=index)
    await pilot.pause()


def make_tree(root: Path, spec: dict[str, Any]) -> None:
    """``{"a.txt": b"..", "sub": {"b.txt": b".."}}`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        if isinstance(value, dict):
            make_tree(root / name, value)
        else:
            (root / name).write_bytes(value)


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            out[str(full.relative_to(root))] = full.read_bytes()
    return out
