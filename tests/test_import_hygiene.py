"""The engine stays UI-free: importing every backend module loads no Textual, Rich or tui."""

from __future__ import annotations

import ast
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


def test_the_tui_does_not_import_the_cli() -> None:
    """One wiring (backend/session.py): the TUI's screens, dialogs and widgets use the backend,
    never the ``ferry`` command's modules (``tui.cli.*``)."""
    import tui

    mods = sorted(
        m.name for m in pkgutil.walk_packages(tui.__path__, prefix="tui.")
        if not m.name.startswith(("tui.cli", "tui.__main__"))
    )
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "from tui.app import FerryApp\n"
        "FerryApp()\n"
        "print(','.join(sorted(n for n in sys.modules if n.startswith('tui.cli'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "tui.app" in mods and "tui.screens.sites" in mods
    assert out.stdout.strip() == "", f"the TUI imported the CLI: {out.stdout.strip()}"
    # imports inside functions too (the old tui/app.py imported tui.cli.vault_cli lazily)
    lazy = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "cli" or rel.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            lazy += [f"{rel}:{node.lineno} {n}" for n in names if n.startswith("tui.cli")]
    assert lazy == [], f"the TUI imports the CLI: {lazy}"


def test_import_contracts_hold() -> None:
    """The layer contracts in pyproject.toml ([tool.importlinter]): backend is UI-free, the TUI
    layers cli > app > screens > widgets > dialogs only import downwards (lazy imports inside
    functions count too: the Share… dialog once imported the Shares screen to refresh it)."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
