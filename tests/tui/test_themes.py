"""Themes as data files: built-ins load, user themes register, a broken one is reported once
and the default is used; the chosen theme is remembered in settings.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import ConfigError
from tests.tui import notifications, wait_for_screen
from tui.app import FerryApp
from tui.screens.sites import SitesScreen
from tui.themes import BUILTIN_NAMES, parse_theme


def test_builtin_themes_are_valid_files() -> None:
    folder = Path(__file__).resolve().parents[2] / "themes"
    for name in BUILTIN_NAMES:
        theme = parse_theme((folder / f"{name}.toml").read_text(), name)
        assert theme.name == name


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name = "x"\nprimary = "not-a-colour"\n', "is not a colour"),
        ('name = "x"\n', "'primary' colour is required"),
        ('name = "x"\nprimary = "#fff"\nbogus = 1\n', "unknown setting(s) bogus"),
        ('name = "x y"\nprimary = "#fff"\n', "'name'"),
        ("name = [", "invalid TOML"),
    ],
)
def test_bad_theme_is_refused_with_reason(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_theme(text, "mine.toml")
    assert problem in info.value.message
    assert "mine.toml" in info.value.message


async def test_broken_user_theme_is_one_notification_and_default_used(ferry_home: Path) -> None:
    themes = ferry_home / "themes"
    themes.mkdir(parents=True)
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "#zzzzzz"\n')
    (themes / "ocean.toml").write_text('name = "ocean"\nprimary = "#1e88e5"\ndark = true\n')
    (ferry_home / "settings.toml").write_text('theme = "broken"\n')
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        shown = notifications(app)
        assert len(shown) == 1
        assert "broken.toml" in shown[0] and "#zzzzzz" in shown[0]
        assert app.theme == "ferry-dark"
        assert "ocean" in app.available_themes
    assert (ferry_home / "settings.toml").read_text() == 'theme = "broken"\n'


async def test_user_theme_and_choice_are_remembered(ferry_home: Path) -> None:
    themes = ferry_home / "themes"
    themes.mkdir(parents=True)
    (themes / "ocean.toml").write_text('name = "ocean"\nprimary = "#1e88e5"\n')
    (ferry_home / "settings.toml").write_text('# mine\ntheme = "ferry-light"\n')
    app = FerryApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        assert app.theme == "ferry-light"
        app.theme = "ocean"
        await pilot.pause()
    text = (ferry_home / "settings.toml").read_text()
    assert 'theme = "ocean"' in text and "# mine" in text
    again = FerryApp()
    async with again.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, SitesScreen)
        assert again.theme == "ocean"
