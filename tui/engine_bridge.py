"""The bridge between the transfer engine (asyncio tasks) and Textual widgets.

One :class:`EngineBridge` per app subscribes to ``app.engine`` once. Each engine event becomes
a message posted to every widget that registered (the queue panel, the status-bar summary):
``progress`` events as replaceable :class:`~tui.messages.TransferProgress`, job events as
:class:`~tui.messages.TransferChanged`. Finished and failed jobs raise one notification, and
callbacks registered with :meth:`EngineBridge.on_finished` (the browser reloads its panes) run
once per finished job; a finished job's notification carries its finisher's notes (a move says
how many originals it deleted and which it kept).
"""

from __future__ import annotations

import contextlib
import inspect
import posixpath
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.widget import Widget

from backend.transfers.model import FINISHED_STATES, JobStatus, TransferEvent
from tui.messages import TransferChanged, TransferProgress
from tui.services import ferry

if TYPE_CHECKING:
    from backend.agent.remote import AgentEngine
    from backend.transfers import JobSpec, TransferEngine

    Engine = TransferEngine | AgentEngine

FinishedCallback = Callable[[JobStatus | None, TransferEvent], Awaitable[None] | None]

_BRIDGES: weakref.WeakKeyDictionary[App[object], EngineBridge] = weakref.WeakKeyDictionary()


class EngineBridge:
    def __init__(self, app: App[object]) -> None:
        self.app = app
        self.engine: Engine | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._listeners: list[Widget] = []
        self._finished_callbacks: dict[int, FinishedCallback] = {}
        self._notified: set[tuple[int, str]] = set()
        self.latest: dict[int, TransferEvent] = {}

    # -- wiring ------------------------------------------------------------------------
    def attach(self) -> Engine | None:
        """Subscribe to ``app.engine`` if it exists and changed; returns the engine or None."""
        engine = ferry(self.app).engine
        if engine is self.engine:
            return engine
        self.detach()
        self.engine = engine
        if engine is not None:
            self._unsubscribe = engine.subscribe(self._on_event)
        return engine

    def detach(self) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(Exception):
                self._unsubscribe()
        self._unsubscribe = None
        self.engine = None

    def register(self, widget: Widget) -> None:
        self.attach()
        if widget not in self._listeners:
            self._listeners.append(widget)

    def unregister(self, widget: Widget) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(widget)

    def on_finished(self, job_id: int, callback: FinishedCallback) -> None:
        self._finished_callbacks[job_id] = callback

    # -- engine calls -------------------------------------------------------------------
    def jobs(self) -> list[JobStatus]:
        engine = self.attach()
        if engine is None:
            return []
        try:
            return list(engine.jobs())
        except Exception:
            return []

    def status(self, job_id: int) -> JobStatus | None:
        return next((j for j in self.jobs() if j.id == job_id), None)

    def running(self) -> Engine:
        """The app's engine; RuntimeError (shown as a notification) when it is not running."""
        engine = self.attach()
        if engine is None:
            raise RuntimeError("the transfer engine is not running")
        return engine

    async def submit(self, spec: JobSpec) -> int:
        return await self.running().submit(spec)

    async def pause(self, job_id: int) -> None:
        await self.running().pause(job_id)

    async def resume(self, job_id: int) -> None:
        await self.running().resume(job_id)

    async def cancel(self, job_id: int) -> None:
        await self.running().cancel(job_id)

    async def retry(self, job_id: int) -> None:
        await self.running().retry(job_id)

    async def move(self, job_id: int, delta: int) -> None:
        await self.running().move(job_id, delta)

    async def call(self, name: str, *args: Any) -> object:
        """Call an engine method by name (older callers; prefer the typed methods above)."""
        result = getattr(self.running(), name)(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def failure(self, job: JobStatus, error: str | None = None) -> str:
        """Why ``job`` failed, in one line: its error and, when files failed, the first
        file's reason (``1 of 1 files failed — volume.raw: no such file or folder: …``)."""
        text = error or job.error or "failed (no reason given)"
        engine = self.attach()
        try:
            failed = [f for f in engine.files(job.id) if f.state == "failed"] if engine else []
        except Exception:  # the journal is unreadable: the job's own error is all we have
            failed = []
        if failed:
            first = failed[0]
            name = posixpath.basename(first.source.rstrip("/")) or first.source
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            text = f"{text} — {name}: {first.error or 'failed'}{more}"
        return text

    async def forget_finished(self, job_ids: list[int] | None = None) -> list[int]:
        """Forget finished jobs (all, or ``job_ids``) and have every queue widget re-read."""
        engine = self.attach()
        if engine is None:
            raise RuntimeError("the transfer engine is not running")
        forgotten = list(await engine.forget_finished(job_ids))
        for widget in list(self._listeners):
            if widget.is_attached:
                widget.post_message(TransferChanged(None))
        return forgotten

    # -- events -------------------------------------------------------------------------
    def _on_event(self, event: TransferEvent) -> None:
        self.latest[event.job_id] = event
        if event.kind == "progress":
            for widget in list(self._listeners):
                if widget.is_attached:
                    widget.post_message(TransferProgress(event))
            return
        for widget in list(self._listeners):
            if widget.is_attached:
                widget.post_message(TransferChanged(event))
        if event.kind == "job" and event.state in FINISHED_STATES:
            self._finished(event)

    def _finished(self, event: TransferEvent) -> None:
        key = (event.job_id, event.state)
        if key in self._notified:
            return
        self._notified.add(key)
        status = self.status(event.job_id)
        label = status.label if status else f"transfer {event.job_id}"
        # what a tagged job's finisher did (a move: originals deleted, and which were kept)
        notes = "".join(f"\n{n}" for n in self._notes(event.job_id))
        if event.state == "done":
            self.app.notify(label + notes, title="Transfer finished",
                            severity="warning" if "kept:" in notes else "information",
                            timeout=12 if notes else 5)
        elif event.state == "failed":
            error = event.error or (status.error if status else None) or "failed"
            if status is not None:
                error = self.failure(status, error)
            self.app.notify(f"{label}: {error}{notes}", title="Transfer failed",
                            severity="error", timeout=12)
        callback = self._finished_callbacks.pop(event.job_id, None)
        if callback is not None:
            result = callback(status, event)
            if inspect.isawaitable(result):
                self.app.run_worker(result, group="transfer-finished", exclusive=False)


    def _notes(self, job_id: int) -> list[str]:
        try:
            return list(self.engine.notes(job_id)) if self.engine is not None else []
        except Exception:
            return []


def bridge_for(app: App[object]) -> EngineBridge:
    """The app's one bridge (created on first use)."""
    bridge = _BRIDGES.get(app)
    if bridge is None:
        bridge = _BRIDGES[app] = EngineBridge(app)
    return bridge
