"""Makes ``pilot.press`` return only once the keys have been handled.

Textual's ``Pilot.press`` waits for "CPU idle" (process time not advancing over 20 ms) and one
round of callbacks through the screen's widgets. On a loaded machine the test process can be
descheduled for those 20 ms, which looks idle, and a key can still be on its way from the app
to the focused widget when the test asserts (seen in CI: ``space, down, space`` had marked one
file, not two). Each extra round drains one hop of that path (app, screen, focused widget).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

_press = Pilot.press


async def _press_and_settle(self: Pilot[Any], *keys: str) -> None:
    await _press(self, *keys)
    for _ in range(3):
        await self._wait_for_screen()


@pytest.fixture(autouse=True)
def _keys_handled_before_press_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Pilot, "press", _press_and_settle)
