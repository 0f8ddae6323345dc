"""Names from servers are validated and sanitised; local writes stay under their root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.errors import UnsafeNameError
from backend.fsutil import atomic_write, open_exclusive, safe_join, safe_local_mode
from backend.names import display_name, is_safe_name, validate_name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "/etc", "a\\b", "nul\x00", "esc\x1b[2J", "x" * 256]
)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        validate_name(name)


@pytest.mark.parametrize("name", ["IM0001.dcm", "CASE 2026-11-21", "résumé.pdf", ".hidden"])
def test_ordinary_names_pass(name: str) -> None:
    assert validate_name(name) == name


@given(st.text())
def test_display_name_never_contains_control_characters(text: str) -> None:
    shown = display_name(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in shown)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4))
def test_safe_join_result_is_always_under_root(tmp_path_factory, parts: list[str]) -> None:
    root = tmp_path_factory.mktemp("root")
    if all(is_safe_name(p) for p in parts):
        path = safe_join(root, *parts)
        assert root.resolve() in path.resolve().parents
    else:
        with pytest.raises(UnsafeNameError):
            safe_join(root, *parts)


def test_safe_join_refuses_to_pass_through_a_symlink_out_of_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(UnsafeNameError):
        safe_join(root, "escape", "file.txt")


def test_open_exclusive_will_not_write_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("original")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(FileExistsError):
        open_exclusive(tmp_path / "link")
    assert target.read_text() == "original"


def test_atomic_write_is_private(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "secret.toml"
    atomic_write(path, "x = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["secret.toml"]


@pytest.mark.parametrize(
    ("remote", "local"), [(0o4755, 0o755), (0o2777, 0o755), (0o1666, 0o644), (0o600, 0o600)]
)
def test_server_modes_never_grant_setuid_or_world_write(remote: int, local: int) -> None:
    assert safe_local_mode(remote) == local
