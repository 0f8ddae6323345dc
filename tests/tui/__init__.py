"""TUI tests: Pilot-driven flows against real in-process SFTP servers, and snapshots.

Helpers shared by the TUI test modules live here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from backend.sites.model import Site
from backend.sites.store import SiteStore


async def wait_for(pilot: Pilot[Any], predicate: Any, *, seconds: float = 20.0) -> None:
    """Let the app run until ``predicate()`` is true (fails the test if it never is).

    The generous limit only matters on a loaded machine; a passing test returns at once.
    """
    deadline = time.monotonic() + seconds
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:  # a widget caught mid-update (rows added before their columns) is "not yet"
            if predicate():
                return
        except (IndexError, KeyError) as exc:
            error = exc
        await pilot.pause(0.02)
    raise AssertionError(f"condition never became true: {predicate}") from error


async def wait_for_screen(pilot: Pilot[Any], cls: type) -> Any:
    """Wait until ``cls`` is the active screen, laid out and with its focus set."""
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, cls) and pilot.app.screen.focused is not None,
    )
    await pilot.pause()
    return pilot.app.screen


async def type_text(pilot: Pilot[Any], text: str) -> None:
    """Type ``text`` key by key into the focused widget."""
    await pilot.press(*["space" if ch == " " else ch for ch in text])


def notifications(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


def save_site(site: Site) -> None:
    SiteStore().add(site)


def sites_toml(home: Path) -> str:
    return (home / "sites.toml").read_text()


async def settle(pilot: Pilot[Any]) -> None:
    """Let the screen stop changing before a snapshot.

    Focus, the Footer (which recomposes a frame after focus or bindings change) and late
    worker results can land after a test's last explicit wait; on a loaded machine a snapshot
    taken then catches an in-between frame. Waits until focus is set and three consecutive
    renders are identical (at most a few seconds).
    """
    deadline = time.monotonic() + 5.0
    while pilot.app.screen.focused is None and time.monotonic() < deadline:
        await pilot.pause(0.02)
    await pilot.wait_for_scheduled_animations()
    previous, same = None, 0
    deadline = time.monotonic() + 5.0
    while same < 3 and time.monotonic() < deadline:
        await pilot.pause(0.05)
        frame = re.sub(r"terminal-\d+", "t", pilot.app.export_screenshot())
        same = same + 1 if frame == previous else 0
        previous = frame
