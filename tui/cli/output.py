"""Terminal output and prompts for the CLI: one-line errors, interactivity, secret prompts.

Server-supplied text goes through :func:`backend.names.display_name` before it is printed.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any

from backend.errors import CancelledByUser, FerryError, UsageError
from backend.names import display_name


def print_error(err: FerryError | str) -> None:
    if isinstance(err, FerryError):
        text = err.message + (f" ({err.hint})" if err.hint else "")
    else:
        text = err
    print(f"ferry: error: {display_name(text)}", file=sys.stderr)


def info(text: str) -> None:
    print(text, file=sys.stderr)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def is_interactive() -> bool:
    """True when a person can answer prompts: stdin and stderr are TTYs and not under CI."""
    if os.environ.get("CI") or os.environ.get("FERRY_NONINTERACTIVE"):
        return False
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def ask_secret(prompt: str) -> str:
    """Prompt for a secret without echo. Fails clearly when nobody can answer."""
    if not is_interactive():
        raise UsageError(
            f"cannot prompt for {prompt.rstrip(': ').lower()} without a terminal",
            hint="pass it with the matching --*-file / --*-stdin option",
        )
    try:
        return getpass.getpass(prompt, stream=sys.stderr)
    except EOFError:
        raise CancelledByUser("no input") from None


def ask_choice(prompt: str, choices: dict[str, str], default: str) -> str:
    """Ask a one-letter question. ``choices`` maps a key to its label. Returns the key."""
    labels = " / ".join(f"[{k}] {v}" for k, v in choices.items())
    while True:
        print(f"{prompt}\n  {labels} (default {default}): ", end="", file=sys.stderr, flush=True)
        try:
            answer = sys.stdin.readline()
        except KeyboardInterrupt:
            raise CancelledByUser("cancelled") from None
        if answer == "":
            raise CancelledByUser("cancelled (no input)")
        answer = answer.strip().lower() or default
        if answer in choices:
            return answer


def read_secret_file(path: str) -> str:
    """A secret from a file (first line, newline stripped); ``-`` reads stdin."""
    try:
        if path == "-":
            data = sys.stdin.readline()
        else:
            with open(path, encoding="utf-8") as fh:
                data = fh.readline()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    value = data.rstrip("\r\n")
    if not value:
        raise UsageError(f"{path} is empty: expected the secret on its first line")
    return value
