"""Packaging facts the wheel relies on: the built-in themes are found in a source checkout
without any symlink (the installed wheel is checked by .ci/wheel-smoke), and pyproject declares
every third-party package that backend/ and tui/ import."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_source_checkout_reads_builtin_themes_from_the_top_level_folder() -> None:
    assert not (ROOT / "tui" / "builtin_themes").exists(), "themes/ is mapped by setup.py"
    # -S: no .pth files, so an editable install's import hook cannot answer instead of the
    # source tree; site-packages is put back on the path for textual.
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    env = {**os.environ, "PYTHONPATH": path}
    code = (
        "from tui.themes import builtin_dir, load_builtin_themes\n"
        "print(builtin_dir()); print(' '.join(t.name for t in load_builtin_themes()))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    folder, names = proc.stdout.splitlines()
    assert Path(folder) == ROOT / "themes"
    assert names == "ferry-dark ferry-light ferry-high-contrast"


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("backend/**/*.py"), *ROOT.glob("tui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"backend", "tui"}


# import name -> distribution name, where they differ
_DISTRIBUTION = {"argon2": "argon2-cffi", "email_validator": "email-validator",
                 "argparse_manpage": "argparse-manpage", "psycopg_pool": "psycopg-pool"}


def test_every_imported_third_party_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
        for requirement in project["dependencies"]
    }
    undeclared = sorted(
        _DISTRIBUTION.get(module, module)
        for module in _imported_top_level_modules()
        if _DISTRIBUTION.get(module, module).lower() not in declared
    )
    assert not undeclared, f"imported but not in pyproject dependencies: {undeclared}"
    assert "bcrypt" not in declared and "asyncssh[bcrypt]" in " ".join(project["dependencies"])
