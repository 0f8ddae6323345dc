"""``ferry completion bash|zsh|fish`` and ``ferry manpage``: shell completion scripts (shtab) and
the ferry(1) man page (argparse-manpage), both generated from the parser that ``ferry`` itself
parses with (tui.cli.build_parser), so they list exactly the commands and options that exist.
How to install them: docs/cli.md, "Shell completion and man page".
"""

from __future__ import annotations

import argparse
import sys

from backend import __version__

SHELLS = ("bash", "zsh", "fish")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script for bash, zsh or fish",
        description="Print a completion script for SHELL on stdout, e.g. "
        "'ferry completion bash > ~/.local/share/bash-completion/completions/ferry'.",
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    p.set_defaults(func=cmd_completion)
    m = sub.add_parser(
        "manpage",
        help="print the ferry(1) man page (roff)",
        description="Print the ferry(1) man page on stdout, e.g. "
        "'ferry manpage > ~/.local/share/man/man1/ferry.1' or 'ferry manpage | man -l -'.",
    )
    m.set_defaults(func=cmd_manpage)


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    import shtab

    from tui.cli import build_parser

    return shtab.complete(build_parser(), shell=shell)


def manpage() -> str:
    """The ferry(1) man page as roff text."""
    from argparse_manpage.manpage import Manpage

    from tui.cli import build_parser

    page = Manpage(build_parser())
    page.source = f"ferry {__version__}"
    page.manual = "Ferry manual"
    page.description = "move medical case files securely over SFTP"
    page.add_section("environment", "=", _ENVIRONMENT)
    page.add_section("exit status", "=", _EXIT_STATUS)
    # a help line that begins with ' (e.g. "'ferry keygen ...'") would be read by roff as a
    # control line: \& in front makes it text (argparse-manpage escapes only dashes)
    return "\n".join("\\&" + line if line.startswith("'") else line
                     for line in str(page).split("\n"))


_ENVIRONMENT = """.TP
.B FERRY_HOME
one folder for all of Ferry's configuration and state instead of the platform's folders
.TP
.B FERRY_VAULT_PASSPHRASE_FILE
a file holding the vault's master passphrase, for scripts
.TP
.B FERRY_NONINTERACTIVE
never prompt (as when stdin is not a terminal or CI is set)"""

_EXIT_STATUS = """0 on success, 2 for a usage error, 130 when interrupted; every other
failure has its own code, printed with a one-line message (the table is in docs/cli.md,
"Exit codes")."""


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(args.shell))
    return 0


def cmd_manpage(args: argparse.Namespace) -> int:
    sys.stdout.write(manpage())
    return 0
