"""``python -m backend.agent run [--relock-after SECONDS]``: the agent in the foreground.

What a client starts in the background (backend/agent/client.py: in its own session, standard
streams to ``logs/agent.log``) and what the systemd user unit runs (backend/agent/unit.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from backend.agent.server import DEFAULT_RELOCK, run_agent
from backend.errors import FerryError


def relock_seconds(text: str | None) -> float:
    if text is None or text == "":
        return DEFAULT_RELOCK
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seconds must be 0 (never) or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.agent")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--relock-after", type=relock_seconds,
                        default=relock_seconds(os.environ.get("FERRY_AGENT_RELOCK")),
                        metavar="SECONDS", help="lock the vault after this long unused (0: never)")
    args = parser.parse_args(argv)
    from backend.log import setup_logging

    logger = setup_logging()
    stream = logging.StreamHandler(sys.stderr)  # logs/agent.log when started in the background
    stream.setLevel(logging.INFO)
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("ferry.agent").addHandler(stream)
    try:
        return run_agent(relock_after=args.relock_after)
    except FerryError as exc:
        logger.error("agent: %s", exc)
        print(f"ferry agent: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
