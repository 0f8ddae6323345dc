"""``ferry agent start|stop|status|run|unlock|lock|install-unit``: the per-user Ferry agent
(backend/agent/, docs/agent.md).

``start`` starts it in the background (``get``/``put`` also do on first need), ``run`` keeps it
in the foreground (systemd), ``stop`` stops it (running transfers are paused with their offsets
saved; the next agent resumes them), ``status`` says whether one runs and what it does,
``unlock`` passes the vault passphrase to it over the socket (typed without echo, or from
``FERRY_VAULT_PASSPHRASE_FILE``; never on argv), ``lock`` locks it, ``install-unit`` writes the
systemd user unit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from backend.agent import client as agent
from backend.agent import location
from backend.errors import AgentError, UsageError
from backend.names import display_name
from backend.session import passphrase_from_env
from backend.vault import Vault
from tui.cli.output import ask_secret, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="the background agent that keeps transfers running",
                       description="The per-user Ferry agent: owns the transfer queue so "
                       "transfers outlive the terminal (docs/agent.md).")
    asub = p.add_subparsers(dest="agent_command", metavar="ACTION")
    start = asub.add_parser("start", help="start the agent in the background")
    start.add_argument("--relock-after", type=float, default=None, metavar="SECONDS",
                       help="lock the vault after this long unused (default 3600; 0: never)")
    start.set_defaults(func=cmd_start)
    run = asub.add_parser("run", help="run the agent in the foreground (systemd)")
    run.add_argument("--relock-after", type=float, default=None, metavar="SECONDS")
    run.set_defaults(func=cmd_run)
    stop = asub.add_parser("stop", help="stop the agent (running transfers pause, resumable)")
    stop.set_defaults(func=cmd_stop)
    status = asub.add_parser("status", help="whether the agent runs, and what it does")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    unlock = asub.add_parser("unlock", help="unlock the vault in the agent")
    unlock.set_defaults(func=cmd_unlock)
    lock = asub.add_parser("lock", help="lock the vault in the agent")
    lock.set_defaults(func=cmd_lock)
    unit = asub.add_parser("install-unit", help="write the systemd user unit")
    unit.add_argument("--relock-after", type=float, default=None, metavar="SECONDS")
    unit.set_defaults(func=cmd_install_unit)


def _relock_args(value: float | None) -> list[str]:
    if value is None:
        return []
    if value < 0:
        raise UsageError("--relock-after must be 0 (never) or more seconds")
    return ["--relock-after", f"{value:g}"]


def cmd_start(args: argparse.Namespace) -> int:
    async def start() -> int:
        try:
            client = await agent.connect()
            await client.close()
            print(f"the Ferry agent already runs (pid {client.pid})")
            return 0
        except agent.NotRunning:
            pass
        proc = agent.spawn(_relock_args(args.relock_after))
        for _ in range(int(agent.START_TIMEOUT / 0.05)):
            try:
                client = await agent.connect()
            except agent.NotRunning:
                if proc.poll() is not None:
                    raise AgentError(f"the Ferry agent did not start: {agent.last_log_line()}",
                                     hint=f"see {location.log_path()}") from None
                await asyncio.sleep(0.05)
                continue
            await client.close()
            print(f"the Ferry agent runs (pid {client.pid}); socket {location.socket_path()}, "
                  f"log {location.log_path()}")
            return 0
        raise AgentError("the Ferry agent did not start in time",
                         hint=f"see {location.log_path()}")

    return asyncio.run(start())


def cmd_run(args: argparse.Namespace) -> int:
    from backend.agent.__main__ import main

    return main(["run", *_relock_args(args.relock_after)])


def cmd_stop(args: argparse.Namespace) -> int:
    pid = asyncio.run(agent.stop())
    if pid is None:
        print("no Ferry agent is running")
    else:
        print(f"the Ferry agent (pid {pid}) stopped; unfinished transfers resume when it "
              "starts again")
    return 0


def _call(method: str, **params: Any) -> Any:
    async def call() -> Any:
        client = await agent.connect()
        try:
            return await client.call(method, **params)
        finally:
            await client.close()

    return asyncio.run(call())


def cmd_status(args: argparse.Namespace) -> int:
    try:
        status = _call("status")
    except agent.NotRunning:
        if args.json:
            print_json({"running": False, "socket": str(location.socket_path())})
        else:
            print("no Ferry agent is running (ferry agent start; get/put start one when "
                  "needed)")
        return 0
    if args.json:
        print_json({"running": True, **status})
        return 0
    jobs = ", ".join(f"{n} {state}" for state, n in sorted(status["jobs"].items())) or "none"
    relock = status["relock_after"]
    print(f"the Ferry agent runs: pid {status['pid']}, ferry {status['ferry']}, protocol "
          f"{status['protocol']}, up {status['uptime']:.0f} s\n"
          f"  socket: {status['socket']}\n  log:    {status['log']}\n"
          f"  vault:  {status['vault']}"
          + (f" (locks after {relock:g} s unused)" if relock and status["vault"] != "none"
             else "") +
          f"\n  jobs:   {jobs}\n  clients: {status['clients']}")
    for item in status["attention"]:
        print(f"  needs attention: {item['text']} (any attached 'ferry' command asks)")
    served = status.get("share_service")
    if served:
        where = served["url"] or "not running"
        problem = f" ({served['problem']})" if served["problem"] else ""
        print(f"  share service: {display_name(where)}{display_name(problem)}")
    for watcher in status.get("watchers", []):
        problem = f"; last problem: {watcher['last_problem']}" if watcher["last_problem"] else ""
        print(f"  watching {display_name(watcher['site'])} every {watcher['interval']:g} s: "
              f"{watcher['polls']} poll(s), {watcher['downloaded']} result(s) downloaded"
              f"{display_name(problem)}")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    passphrase = passphrase_from_env()
    if passphrase is None:
        from backend import paths

        if not Vault.exists(paths.vault_file()):
            raise UsageError("there is no vault to unlock", hint="ferry vault set NAME creates it")
        passphrase = ask_secret("Vault master passphrase: ")
    async def unlock() -> None:
        client = await agent.connect(start=True)
        try:
            await client.call("unlock", passphrase=passphrase)
        finally:
            await client.close()

    asyncio.run(unlock())
    print("the vault is unlocked in the Ferry agent")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    try:
        state = _call("lock")["vault"]
    except agent.NotRunning:
        print("no Ferry agent is running")
        return 0
    print(f"the vault is {state} in the Ferry agent")
    return 0


def cmd_install_unit(args: argparse.Namespace) -> int:
    from backend.agent import unit

    value = args.relock_after
    if value is not None and value < 0:
        raise UsageError("--relock-after must be 0 (never) or more seconds")
    path: Path = unit.install(value)
    user = os.environ.get("USER") or "$USER"
    print(f"wrote {path}\n"
          "enable it:        systemctl --user daemon-reload && systemctl --user enable --now "
          f"{unit.UNIT_NAME}\n"
          f"on a server (keep it running after you log out): loginctl enable-linger {user}")
    return 0
