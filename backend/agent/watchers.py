"""Case watchers as jobs of the agent (docs/agent.md, "Case watchers").

``ferry case watch SITE --in-agent`` asks the agent to poll SITE's result folder: the agent runs
what ``ferry case watch`` runs in a terminal (backend/cases/watch.py ``watch_loop``: stable
results downloaded through its own engine, verified, recorded in the case store), one task per
site, with no terminal needed — a result that arrives at night is fetched. Each watcher is
saved in ``<state>/agent/watchers.json`` (0600) so the next agent (after a crash, a reboot with
the systemd unit, ``ferry agent stop``/``start``) starts it again; ``--stop`` removes it.
What a watcher finds (downloaded, problems) is announced to attached clients as a
notification (the TUI shows it) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from backend.agent import location
from backend.errors import ConfigError, FerryError, UsageError
from backend.names import display_name
from backend.session import Session
from backend.tasks import cancel_and_wait

log = logging.getLogger("ferry.agent.watchers")


@dataclass
class WatchSpec:
    site: str
    interval: float = 60.0
    into: str | None = None
    email: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatchSpec:
        """From a client's request or the saved list (KeyError/TypeError/ValueError if bad)."""
        into = data.get("into")
        return cls(site=str(data["site"]), interval=float(data.get("interval") or 60.0),
                   into=str(into) if into else None, email=bool(data.get("email")))


@dataclass
class WatchState:
    spec: WatchSpec
    since: float = field(default_factory=time.time)
    polls: int = 0
    downloaded: int = 0
    last_poll: float | None = None
    last_problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.spec), "since": self.since, "polls": self.polls,
                "downloaded": self.downloaded, "last_poll": self.last_poll,
                "last_problem": self.last_problem}


def saved_path() -> Path:
    return location.saved_file("watchers.json")


class Watchers:
    """The agent's case watchers: started, stopped, listed, saved."""

    def __init__(self, session: Session, engine: Any,
                 notify: Callable[[str, str], None]) -> None:
        self.session = session
        self.engine = engine
        self.notify = notify  # (text, severity)
        self.states: dict[str, WatchState] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> list[WatchSpec]:
        data = location.read_saved(saved_path()) or {}
        out = []
        for item in data.get("watchers", []):
            try:
                out.append(WatchSpec.from_json(item))
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("ignoring a malformed watcher in %s: %r", saved_path(), item)
        return out

    def _save(self) -> None:
        location.write_saved(saved_path(),
                             {"watchers": [asdict(s.spec) for s in self.states.values()]})

    # -- control ----------------------------------------------------------------------------
    def start_saved(self) -> None:
        for spec in self._load():
            self._start(spec)

    def add(self, spec: WatchSpec) -> WatchState:
        from backend.sites.store import SiteStore

        SiteStore().get(spec.site)  # an unknown site: one clear error now, not in the log later
        if spec.interval < 1:
            raise UsageError("--interval must be at least 1 second")
        if spec.into is not None and not Path(spec.into).is_absolute():
            raise UsageError("the agent needs an absolute --into folder (it runs in /)")
        if spec.site in self.states:
            self._stop(spec.site)
        state = self._start(spec)
        self._save()
        return state

    def remove(self, site: str) -> bool:
        if site not in self.states:
            return False
        self._stop(site)
        self._save()
        return True

    def list(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.states.values()]

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            await cancel_and_wait(task)
        self.tasks.clear()

    def _start(self, spec: WatchSpec) -> WatchState:
        state = self.states[spec.site] = WatchState(spec)
        self.tasks[spec.site] = asyncio.ensure_future(self._run(state))
        log.info("watching %s every %gs", spec.site, spec.interval)
        return state

    def _stop(self, site: str) -> None:
        self.states.pop(site, None)
        task = self.tasks.pop(site, None)
        if task is not None:
            task.cancel()
        log.info("stopped watching %s", site)

    # -- the watcher --------------------------------------------------------------------------
    async def _run(self, state: WatchState) -> None:
        from backend.cases import watch
        from backend.cases.watch import CaseEvent
        from backend.sites.store import SiteStore

        spec = state.spec
        session = self.session

        @contextlib.asynccontextmanager
        async def open_sftp() -> AsyncIterator[asyncssh.SFTPClient]:
            async with session.sftp(spec.site) as (_site, _conn, sftp):
                yield sftp

        def on_event(event: CaseEvent) -> None:
            text = f"{spec.site}: {event.message}"
            log.info("watcher %s", display_name(text))
            self.notify(text, "warning" if event.kind == "problem" else "information")

        try:
            site = SiteStore().get(spec.site)
        except (ConfigError, FerryError) as exc:
            state.last_problem = exc.message
            log.warning("watcher %s: %s", spec.site, exc.message)
            return
        into = Path(spec.into) if spec.into else None
        async for report in watch.watch_loop(site, open_sftp, self.engine,
                                             interval=spec.interval, into=into,
                                             on_event=on_event, email=spec.email):
            state.polls += 1
            state.last_poll = time.time()
            state.downloaded += len(report.downloaded)
            state.last_problem = report.problems[0] if report.problems else None
