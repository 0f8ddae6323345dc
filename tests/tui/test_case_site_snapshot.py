"""Snapshot of a study-io case site in the browser at 80×24 (issue 14): the remote pane on the
site's ``input/`` folder shows each study's full id, its state (*results ready*, *processing*)
and its size next to the local pane. Deterministic as tests/tui/test_snapshots_browser.py (the
same demo fixture: fixed mtimes, UTC, no port on screen)."""

from __future__ import annotations

from typing import Any

from tests.tui import settle
from tests.tui.browser_kit import browser, goto, loaded
from tests.tui.test_snapshots_browser import demo  # noqa: F401  (the fixture)
from tui.app import FerryApp


async def _study_io_input(pilot: Any) -> None:
    app = pilot.app
    app.theme = "ferry-dark"
    screen = await browser(pilot)
    await pilot.press("tab")
    await goto(pilot, screen.right, "input")
    await pilot.press("enter")
    await loaded(pilot, screen.right, "/ai/input")
    app.clear_notifications()
    await settle(pilot)


def test_study_io_site_in_the_browser_at_80x24(snap_compare, demo) -> None:  # noqa: F811
    assert snap_compare(FerryApp(start_site="demo-ai"), terminal_size=(80, 24),
                        run_before=_study_io_input)
