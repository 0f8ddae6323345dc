"""``ferry completion bash|zsh|fish`` and ``ferry manpage`` through the real command: each script
is accepted by its shell and offers every command; the man page documents every command."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from tui.cli import build_parser


def ferry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        capture_output=True, text=True, timeout=60,
    )


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command path the parser accepts: ("sites",), ("sites", "add"), ..."""
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found.extend(commands(child, (*prefix, name)))
    return found


TOP = sorted(path[0] for path in commands(build_parser()) if len(path) == 1)


def test_the_parser_has_the_commands_the_docs_name() -> None:
    assert {"sites", "ls", "get", "put", "share", "completion", "manpage"} <= set(TOP)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_mentions_every_command_and_parses(shell: str, tmp_path) -> None:
    proc = ferry("completion", shell)
    assert proc.returncode == 0, proc.stderr
    missing = [name for name in TOP if name not in proc.stdout]
    assert not missing, f"{shell} completion lacks {missing}"
    script = tmp_path / f"ferry.{shell}"
    script.write_text(proc.stdout)
    check = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}[shell]
    if shutil.which(check[0]) is None:  # a missing part is a failure, never a skip
        pytest.fail(f"{check[0]} is not installed (.ci/run installs it)")
    syntax = subprocess.run([*check, str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr


def bash_complete(script: str, words: list[str]) -> set[str]:
    """What bash offers after typing ``words`` (the last one is the partial word)."""
    driver = (
        f"source {script}\n"
        "fn=$(complete -p ferry | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
        '"$fn" ferry "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def test_bash_completion_offers_commands_sub_commands_and_options(tmp_path) -> None:
    script = tmp_path / "ferry.bash"
    script.write_text(ferry("completion", "bash").stdout)
    assert set(TOP) <= bash_complete(str(script), ["ferry", ""])
    assert {"add", "list", "trust", "remove"} <= bash_complete(str(script), ["ferry", "sites", ""])
    assert bash_complete(str(script), ["ferry", "completion", ""]) >= {"bash", "zsh", "fish"}
    assert "--serve-only" in bash_complete(str(script), ["ferry", "demo", "--s"])


def test_manpage_documents_every_command_and_renders_cleanly(tmp_path) -> None:
    proc = ferry("manpage")
    assert proc.returncode == 0, proc.stderr
    page = proc.stdout
    assert page.startswith(".TH FERRY")
    text = page.replace("\\-", "-")  # roff escapes hyphens
    missing = [
        " ".join(path) for path in commands(build_parser())
        if f".SH COMMAND \\fI\\,'ferry {' '.join(path)}'" not in text
    ]
    assert not missing, f"man page lacks {missing}"
    assert "FERRY_HOME" in page and ".SH EXIT STATUS" in page
    if shutil.which("groff") is None:
        pytest.fail("groff is not installed (.ci/run installs groff-base)")
    # -ww: every warning; -z: no output; the page must render without complaints.
    render = subprocess.run(
        ["groff", "-man", "-ww", "-z"], input=page, capture_output=True, text=True, timeout=30,
    )
    assert render.returncode == 0 and not render.stderr, render.stderr


def test_unknown_shell_is_a_usage_error() -> None:
    proc = ferry("completion", "ksh")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ferry: error: argument SHELL: invalid choice: 'ksh' (choose from 'bash', 'zsh', 'fish')"
        " (see 'ferry completion --help')"
    ]
