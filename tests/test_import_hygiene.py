"""The engine stays UI-free: importing every backend module loads no Textual, Rich or tui."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import backend

ROOT = Path(__file__).resolve().parent.parent


def _backend_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(backend.__path__, prefix="backend.")
    )


def test_backend_modules_are_discovered() -> None:
    mods = _backend_modules()
    assert "backend.errors" in mods and "backend.names" in mods


def test_backend_never_imports_textual_rich_or_tui() -> None:
    mods = _backend_modules()
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich', 'tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "", f"backend pulled in UI modules: {out.stdout.strip()}"
