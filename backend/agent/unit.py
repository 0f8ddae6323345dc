"""The systemd user unit that runs the agent at login (or always, with lingering).

``ferry agent install-unit`` writes ``~/.config/systemd/user/ferry-agent.service`` (or
``$XDG_CONFIG_HOME/systemd/user``); docs/agent.md says how to enable it and why servers want
``loginctl enable-linger``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from backend.fsutil import atomic_write

UNIT_NAME = "ferry-agent.service"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def unit_text(relock_after: float | None = None) -> str:
    """The unit: this interpreter running ``-m backend.agent run``, with this FERRY_HOME."""
    import backend

    root = str(Path(backend.__file__).resolve().parent.parent)
    command = [sys.executable, "-m", "backend.agent", "run"]
    if relock_after is not None:
        command += ["--relock-after", f"{relock_after:g}"]
    env = [f"PYTHONPATH={root}"]
    if os.environ.get("FERRY_HOME"):
        env.append(f"FERRY_HOME={Path(os.environ['FERRY_HOME']).expanduser().resolve()}")
    environment = "".join(f"Environment={shlex.quote(e)}\n" for e in env)
    return (
        "[Unit]\n"
        "Description=Ferry agent: transfers that outlive the terminal (docs/agent.md)\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"{environment}"
        f"ExecStart={shlex.join(command)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "# SIGTERM: running transfers are paused with their offsets saved; they resume at start\n"
        "KillMode=mixed\n"
        "TimeoutStopSec=60\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def install(relock_after: float | None = None) -> Path:
    directory = unit_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / UNIT_NAME
    atomic_write(path, unit_text(relock_after), mode=0o644)
    return path
