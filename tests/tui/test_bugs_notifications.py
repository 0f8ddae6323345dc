"""Notifications never cover a dialog and never pile up (issue 14, bug 10): at 80×24 they
covered the site form's Save / Cancel and the QR code, and about eight stacked at once."""

from __future__ import annotations

from textual.widgets import Button

from tests.tui import wait_for_screen
from tui.app import FerryApp
from tui.dialogs.site_form import SiteFormDialog
from tui.screens.sites import SitesScreen


def _visible_toasts(app: FerryApp) -> set[int]:
    """Toasts the user can see: what is drawn at each cell of the screen."""
    width, height = app.size
    seen: set[int] = set()
    for y in range(height):
        for x in range(0, width, 4):
            try:
                widget, _ = app.screen.get_widget_at(x, y)
            except Exception:
                continue
            node = widget
            while node is not None and type(node).__name__ != "Toast":
                node = node.parent if not isinstance(node.parent, FerryApp) else None
            if node is not None:
                seen.add(id(node))
    return seen


async def test_at_most_three_notifications_and_none_over_a_dialog(ferry_home) -> None:
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        for i in range(8):
            app.notify(f"message {i}", title="Test", timeout=30)
        await pilot.pause(0.3)
        assert 1 <= len(_visible_toasts(app)) <= 3

        await pilot.press("a")
        form = await wait_for_screen(pilot, SiteFormDialog)
        app.notify("while the form is open", title="Test", timeout=30)
        await pilot.pause(0.3)
        assert _visible_toasts(app) == set()
        for button_id in ("#save", "#cancel"):
            button = form.query_one(button_id, Button)
            x, y = button.region.x + 1, button.region.y
            assert app.screen.get_widget_at(x, y)[0] is button
