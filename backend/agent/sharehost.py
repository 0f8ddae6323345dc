"""The share service inside the agent (docs/agent.md, "The share service").

``ferry serve --in-agent [options]`` asks the agent to run what ``ferry serve`` runs in a
terminal (backend/shares/server.py ``open_service`` + ``start_share_service``: the same
recipient pages, admin API, limits, purging and audit), so expiring links keep working after
the admin logs out, without a unit of its own. The options are saved in
``<state>/agent/share-service.json`` (0600; they hold no secret: a password in a database URL
is refused by ``load_storage``, as for ``ferry serve``) and the next agent starts the service
again; ``ferry serve --stop`` stops it. Running ``ferry serve`` on its own stays possible.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backend.agent import location
from backend.errors import FerryError
from backend.shares.launch import ServeSpec, start_service

log = logging.getLogger("ferry.agent.shares")


def saved_path() -> Path:
    return location.saved_file("share-service.json")


class ShareHost:
    """At most one share service, run on the agent's loop."""

    def __init__(self) -> None:
        self.spec: ServeSpec | None = None
        self.handle: Any = None
        self.backends: Any = None
        self.url: str | None = None
        self.since: float | None = None
        self.problem: str | None = None

    def status(self) -> dict[str, Any] | None:
        if self.spec is None:
            return None
        return {**asdict(self.spec), "url": self.url,
                "public_url": getattr(self.handle, "public_url", None),  # the effective one
                "since": self.since, "problem": self.problem}

    async def start(self, spec: ServeSpec, *, save: bool = True) -> dict[str, Any]:
        """Start (or restart with new options) the service; raises its FerryError."""
        await self.stop(save=False)
        handle, url, backends = await start_service(spec)
        self.spec, self.handle, self.backends, self.url = spec, handle, backends, url
        self.since, self.problem = time.time(), None
        if save:
            self._save()
        log.info("share service listening on %s (links: %s/s/...)", url, handle.public_url)
        status = self.status()
        assert status is not None
        return status

    async def start_saved(self) -> None:
        """The service a previous agent ran, if any; a failure is logged and kept (status)."""
        data = location.read_saved(saved_path())
        if data is None:
            return
        try:
            spec = ServeSpec.from_json(data)
            await self.start(spec, save=False)
        except FerryError as exc:
            log.warning("the saved share service did not start: %s", exc)
            self.spec = ServeSpec.from_json(data, absolute_paths=False)
            self.problem = exc.message

    async def stop(self, *, save: bool = True) -> bool:
        was = self.spec is not None
        handle, backends = self.handle, self.backends
        self.spec = self.handle = self.backends = self.url = None
        if handle is not None:
            from backend.shares.server import stop_share_service

            await stop_share_service(handle)
            log.info("share service stopped")
        if backends is not None:
            backends.close()
        if save:
            with contextlib.suppress(FileNotFoundError):
                saved_path().unlink()
        return was

    async def close(self) -> None:
        """The agent stops: the service stops, its saved options stay for the next agent."""
        await self.stop(save=False)

    def _save(self) -> None:
        assert self.spec is not None
        location.write_saved(saved_path(), asdict(self.spec))
