"""Remote names are untrusted input: validation for use, sanitising for display.

``validate_name`` is the one check every listing and every recursive walker applies to a name a
server sent before it is joined to any path. ``display_name`` turns any server-supplied text
(names, errors, banners) into something safe to show in a terminal: control characters and
escape sequences are replaced so they can never move the cursor or recolour the screen.
"""

from __future__ import annotations

import re

from backend.errors import UnsafeNameError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

MAX_NAME_BYTES = 255


def validate_name(name: str | bytes) -> str:
    """Return ``name`` as str if it is safe to use as one path component, else raise.

    Rejects: empty, ``.``, ``..``, anything containing ``/`` or ``\\`` or NUL, control characters,
    and names longer than 255 bytes.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            name = name.decode("utf-8", "surrogateescape")
    shown = display_name(name)
    if name in ("", ".", ".."):
        raise UnsafeNameError(f"unsafe remote name {shown!r}: empty, '.' or '..'")
    if "/" in name or "\\" in name:
        raise UnsafeNameError(f"unsafe remote name {shown!r}: contains a path separator")
    if _CONTROL.search(name):
        raise UnsafeNameError(f"unsafe remote name {shown!r}: contains control characters")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise UnsafeNameError(f"unsafe remote name {shown[:40]!r}...: longer than 255 bytes")
    return name


def is_safe_name(name: str | bytes) -> bool:
    try:
        validate_name(name)
    except UnsafeNameError:
        return False
    return True


def display_name(text: str | bytes) -> str:
    """Server-supplied text made safe to print: control characters shown as ``?``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if _has_surrogates(text):
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return _CONTROL.sub("?", text)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)
