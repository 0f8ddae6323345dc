"""Work around CPython gh-106905 in the test process so pytest can rewrite asserts.

On CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 (this machine and CI run 3.11.7; Debian's python3 is
3.11.2, also affected) ``ast.parse`` keeps the AST constructor's recursion depth in state shared
by the whole interpreter. If a garbage collection during the conversion runs a finalizer and the
GIL passes to another thread that calls ``ast.parse`` too (the ``traceback`` module does, to
place its ``^^^`` marks, whenever a background thread logs an exception), the first call ends
with "SystemError: AST constructor recursion depth mismatch". pytest calls ``ast.parse`` to
rewrite asserts and to show a failure's source, so that error became an INTERNALERROR hiding
which test failed. Fixed upstream in 3.11.8 / 3.12.2 (python/cpython PR 113035).

:func:`install` wraps ``ast.parse`` so that calls never overlap (one lock) and no collection
runs inside one (``gc`` paused for its duration; nested calls from the same thread are fine).
That removes both conditions of the bug; parsing itself is unchanged. Only the test process is
patched (tests/conftest.py), Ferry never calls ``ast.parse``. tests/test_ast_guard.py shows the
bug and the guard.
"""

from __future__ import annotations

import ast
import functools
import gc
import sys
import threading
from typing import Any

_lock = threading.RLock()
_original = ast.parse


def affected(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    """True for the CPython releases with gh-106905."""
    return (3, 11, 0) <= version < (3, 11, 8) or (3, 12, 0) <= version < (3, 12, 2)


@functools.wraps(_original)
def guarded_parse(*args: Any, **kwargs: Any) -> Any:
    with _lock:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return _original(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()


def install() -> None:
    """Guard ``ast.parse`` on affected interpreters (idempotent; a no-op elsewhere)."""
    if affected() and sys.implementation.name == "cpython":
        ast.parse = guarded_parse  # type: ignore[assignment]  # the one patch of this module
