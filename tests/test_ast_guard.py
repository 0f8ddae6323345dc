"""tests/ast_guard.py: the CPython gh-106905 crash is real on this interpreter without the guard,
gone with it, and the guard is active in this test process (so asserts can be rewritten)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ast_guard

TESTS = Path(__file__).resolve().parent

# A garbage collection during ast.parse runs a finalizer that parses too (as one that formats a
# traceback does), which is the same interleaving another thread's ast.parse produces.
SCENARIO = """
import ast, gc, sys
if sys.argv[1] == "guard":
    sys.path.insert(0, sys.argv[2])
    import ast_guard
    ast_guard.install()

class Cycle:
    def __init__(self):
        self.me = self
    def __del__(self):
        ast.parse("a + b")

SOURCE = "\\n".join(f"def f{i}(a):\\n    return [a * {i} for _ in a]" for i in range(200))
gc.set_threshold(50)
try:
    for _ in range(20):
        for _ in range(100):
            Cycle()
        tree = ast.parse(SOURCE)
    print("parsed", len(tree.body))
except SystemError as exc:
    print("SystemError:", exc)
"""


def run_scenario(mode: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO, mode, str(TESTS)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_unguarded_ast_parse_crashes_on_affected_interpreters() -> None:
    out = run_scenario("plain")
    if ast_guard.affected():
        assert out.startswith("SystemError: AST constructor recursion depth mismatch"), out
    else:
        assert out == "parsed 200"


def test_guarded_ast_parse_parses_the_same_tree() -> None:
    assert run_scenario("guard") == "parsed 200"


def test_guard_is_active_in_the_test_process() -> None:
    if not ast_guard.affected():
        pytest.skip(f"CPython {sys.version.split()[0]} does not have gh-106905")
    assert ast.parse is ast_guard.guarded_parse
    assert ast.dump(ast.parse("x = [1, 2]")) == ast.dump(ast_guard._original("x = [1, 2]"))


@pytest.mark.parametrize(
    ("version", "bug"),
    [((3, 11, 2), True), ((3, 11, 7), True), ((3, 11, 8), False), ((3, 12, 1), True),
     ((3, 12, 2), False), ((3, 13, 0), False), ((3, 10, 13), False)],
)
def test_affected_versions(version: tuple[int, int, int], bug: bool) -> None:
    assert ast_guard.affected(version) is bug


def test_asserts_in_this_suite_are_rewritten_to_show_their_values() -> None:
    values = [1, 2]
    with pytest.raises(AssertionError) as info:
        assert values == [1, 3]
    assert "assert [1, 2] == [1, 3]" in str(info.value)
