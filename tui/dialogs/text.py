"""Turning any text, above all server-supplied text, into something safe to display.

Everything shown in a widget goes through :func:`plain`: control characters are replaced
(:func:`backend.names.display_name`) and the result is a ``rich.text.Text``, which Textual
never parses as markup, so a file named ``[bold]x[red].txt`` shows literally.
"""

from __future__ import annotations

from rich.text import Text

from backend.names import display_name


def plain(text: str | bytes, style: str = "") -> Text:
    """``text`` as an unparsed, control-character-free ``Text``."""
    return Text(display_name(text), style=style)


def join_lines(lines: list[str | Text]) -> Text:
    """Several lines (plain strings are sanitised) as one ``Text``."""
    out = Text()
    for i, line in enumerate(lines):
        if i:
            out.append("\n")
        out.append(line if isinstance(line, Text) else plain(line))
    return out
