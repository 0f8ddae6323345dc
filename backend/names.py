"""Remote names are untrusted input: validation for use, sanitising for display, and the one
way a name that is not valid UTF-8 is spelled inside Ferry.

``validate_name`` is the one check every listing and every recursive walker applies to a name a
server sent before it is joined to any path. ``display_name`` turns any server-supplied text
(names, errors, banners) into something safe to show in a terminal: control characters and
escape sequences are replaced so they can never move the cursor or recolour the screen.

**Names that are not valid UTF-8** (e.g. ``bad\\xffname`` written by a Latin-1 client) are
spelled with one ``\\xHH`` escape per byte that is not part of valid UTF-8, and a backslash
the server really sent is spelled ``\\x5c``. That spelling is what listings, the journal, the
audit log, ``--json`` and the TUI carry (plain ASCII escapes: nothing to inject into a
terminal, nothing SQLite or JSON cannot store), and :data:`NAME_CODEC` turns it back into the
server's exact bytes on the wire: every SFTP channel is opened with it as asyncssh's
``path_encoding`` (backend/sshtuning.py), so delete, rename, stat and download of such a name
address the raw bytes. The spelling cannot collide with a real name: a name the server sends
with a backslash in it comes out as ``\\x5c`` and is refused by :func:`validate_name`, so an
accepted name's only backslashes are escapes of undecodable bytes (``\\x80``..``\\xff``).
See docs/cli.md ("Names that are not UTF-8").
"""

from __future__ import annotations

import codecs
import re

from backend.errors import UnsafeNameError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WIRE_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")  # what encode_name turns back into bytes
_BYTE_ESCAPE = re.compile(r"\\x[89a-fA-F][0-9a-fA-F]")  # an undecodable byte, allowed in names

MAX_NAME_BYTES = 255
NAME_CODEC = "ferry_names"
"""The codec every SFTP channel uses for paths (asyncssh ``path_encoding``): UTF-8, with
undecodable bytes as ``\\xHH`` and a literal backslash as ``\\x5c``."""


def decode_name(raw: bytes) -> str:
    """A server's name or path bytes as Ferry spells them (never raises)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape").replace("\\", "\\x5c")
        return _SURROGATE.sub(_escape_surrogate, text)
    return text.replace("\\", "\\x5c") if "\\" in text else text


def encode_name(text: str) -> bytes:
    """The bytes a name or path spelled by :func:`decode_name` stands for on the server.

    ``\\x5c`` is a backslash and ``\\x80``..``\\xff`` the byte itself; any other backslash is
    sent as it is. Surrogate-escaped text (a local name that is not UTF-8) is its raw bytes.
    """
    if "\\" in text:
        text = _WIRE_ESCAPE.sub(_unescape, text)
    return text.encode("utf-8", "surrogateescape")


def is_escaped(name: str) -> bool:
    """Whether ``name`` holds bytes that are not UTF-8 (spelled ``\\xHH``)."""
    return "\\" in name and _BYTE_ESCAPE.search(name) is not None


def has_raw_bytes(text: str) -> bool:
    """Whether ``text`` carries surrogate-escaped bytes (a local name that is not UTF-8, as
    ``os.scandir`` returns it): such text cannot be stored as UTF-8 (journal, audit)."""
    return _SURROGATE.search(text) is not None


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "?"


def _unescape(match: re.Match[str]) -> str:
    value = int(match.group(1), 16)
    if value == 0x5C:
        return "\\"
    if value >= 0x80:
        return chr(0xDC00 + value)  # surrogateescape turns it into the byte itself
    return match.group(0)


def _codec_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return encode_name(text), len(text)


def _codec_decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
    return decode_name(bytes(data)), len(data)


def _find_codec(name: str) -> codecs.CodecInfo | None:
    if name != NAME_CODEC:
        return None
    return codecs.CodecInfo(_codec_encode, _codec_decode, name=NAME_CODEC)  # type: ignore[arg-type]  # typeshed: any Buffer; codecs passes bytes


codecs.register(_find_codec)


def validate_name(name: str | bytes) -> str:
    """Return ``name`` as str if it is safe to use as one path component, else raise.

    Rejects: empty, ``.``, ``..``, anything containing ``/`` or ``\\`` (other than the
    ``\\xHH`` escape of a byte that is not UTF-8) or NUL, control characters, and names
    longer than 255 bytes. Bytes are decoded as :func:`decode_name` spells them.
    """
    if isinstance(name, bytes):
        name = decode_name(name)
    shown = display_name(name)
    if name in ("", ".", ".."):
        raise UnsafeNameError(f"unsafe remote name {shown!r}: empty, '.' or '..'")
    if "/" in name or ("\\" in name and "\\" in _BYTE_ESCAPE.sub("", name)):
        raise UnsafeNameError(f"unsafe remote name {shown!r}: contains a path separator")
    if _CONTROL.search(name):
        raise UnsafeNameError(f"unsafe remote name {shown!r}: contains control characters")
    if len(encode_name(name)) > MAX_NAME_BYTES:
        raise UnsafeNameError(f"unsafe remote name {shown[:40]!r}...: longer than 255 bytes")
    return name


def is_safe_name(name: str | bytes) -> bool:
    try:
        validate_name(name)
    except UnsafeNameError:
        return False
    return True


def display_name(text: str | bytes) -> str:
    """Server-supplied text made safe to print: control characters shown as ``?``, bytes that
    are not UTF-8 (raw, or surrogate-escaped in a local name) as ``\\xHH``."""
    if isinstance(text, bytes):
        text = decode_name(text)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(_escape_surrogate, text)
    return _CONTROL.sub("?", text)
