"""A terminal QR code: a link rendered with half-block characters as a ``rich.text.Text``.

Two module rows share one character cell (``▀`` with the top module as the foreground colour
and the bottom one as the background), always dark modules on a light background with a quiet
zone, whatever the theme, so phone cameras read it. A 70-character share link fits in 37
columns × 19 lines, small enough for an 80×24 terminal.
"""

from __future__ import annotations

import qrcode
from qrcode.constants import ERROR_CORRECT_L
from rich.style import Style
from rich.text import Text

DARK = "#000000"
LIGHT = "#ffffff"


def qr_matrix(data: str, border: int = 2) -> list[list[bool]]:
    """The QR code's modules (True = dark), quiet zone included."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, border=border)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def qr_text(data: str, border: int = 2) -> Text:
    """``data`` as a QR code made of half blocks: ``ceil(rows / 2)`` lines of text."""
    matrix = qr_matrix(data, border)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    out = Text(no_wrap=True, overflow="crop")
    for y in range(0, len(matrix), 2):
        if y:
            out.append("\n")
        for top, bottom in zip(matrix[y], matrix[y + 1], strict=True):
            out.append("▀", Style(color=DARK if top else LIGHT, bgcolor=DARK if bottom else LIGHT))
    return out


def decode_half_blocks(text: Text) -> list[list[bool]]:
    """The modules back from :func:`qr_text`'s output (tests check the rendering with it)."""
    out: list[list[bool]] = []
    for line in text.split("\n"):
        styles: list[Style] = [Style()] * len(line.plain)
        for span in line.spans:
            style = span.style if isinstance(span.style, Style) else Style.parse(span.style)
            styles[span.start : span.end] = [style] * (span.end - span.start)
        out.append([_dark(s.color) for s in styles])
        out.append([_dark(s.bgcolor) for s in styles])
    return out


def _dark(color: object) -> bool:
    return color is not None and getattr(color, "name", "") == DARK
