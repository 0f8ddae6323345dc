"""The transfer queue as the TUI shows it: ``QueuePanel`` (one row per job) and ``QueueSummary``.

Both register with the app's :class:`~tui.engine_bridge.EngineBridge`. Progress messages only
update a model (the newest event per job); a timer redraws at most ``REDRAW_HZ`` times a
second, so a transfer at full speed never floods the screen. The panel's keys pause / resume,
cancel, retry and reorder the selected job, and forget finished ones (``x`` on a finished row,
``C`` for all: ``backend.transfers.journal.forget_finished``); rows are newest first (running
and waiting jobs in the order they run, then finished ones, latest on top) and the panel takes
40% of the screen (at least 12 lines); a failed job's full error shows under the table.
A done job's row names how its files were checked ("sha256 by read-back"; the weakest method
when they differ, the full count under the table) instead of a full bar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, ClassVar

import humanize
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from backend.errors import FerryError
from backend.names import display_name
from backend.transfers.model import (
    FINISHED_STATES,
    JobStatus,
    TransferEvent,
    verified_counts,
    verified_label,
)
from backend.units import human_size
from tui.engine_bridge import bridge_for
from tui.messages import TransferChanged, TransferProgress
from tui.widgets.list_table import ListTable

REDRAW_HZ = 10
ASK_BEFORE_CANCEL = 16 * 1024 * 1024  # x asks first for a queued transfer this big
BAR_WIDTH = 12
PROGRESS_WIDTH = 19  # a bar and its percentage, or a done job's "sha256 by read-back"
STATE_STYLES = {
    "running": "bold",
    "queued": "",
    "paused": "yellow",
    "done": "green",
    "failed": "bold red",
    "cancelled": "dim",
}


def speed_text(speed: float) -> str:
    return f"{human_size(int(speed))}/s" if speed > 0 else ""


def eta_text(eta: float | None, state: str) -> str:
    if state != "running" or eta is None:
        return ""
    if eta < 60:
        return f"{int(eta)}s"
    return humanize.naturaldelta(dt.timedelta(seconds=eta))


def bar(done: int, total: int, width: int = BAR_WIDTH) -> Text:
    """``█████░░░░░ 48%`` as plain Text (no markup)."""
    frac = min(done / total, 1.0) if total > 0 else 0.0
    filled = round(frac * width)
    text = Text(no_wrap=True)
    text.append("█" * filled, style="bold")
    text.append("░" * (width - filled), style="dim")
    text.append(f" {int(frac * 100):3d}%")
    return text


def merge(status: JobStatus, event: TransferEvent | None) -> JobStatus:
    """A job's status with the newest live figures from the engine's events."""
    if event is None:
        return status
    changes: dict[str, Any] = {}
    if event.kind == "progress" and status.state not in ("done", "failed", "cancelled"):
        changes = {
            "bytes_done": max(event.bytes_done, status.bytes_done),
            "bytes_total": event.bytes_total or status.bytes_total,
            "speed": event.speed,
            "eta": event.eta,
        }
    return replace(status, **changes) if changes else status


class QueueModel:
    """Jobs from the engine plus the newest progress event of each (no I/O on redraw)."""

    def __init__(self) -> None:
        self.jobs: list[JobStatus] = []
        self.events: dict[int, TransferEvent] = {}
        self.dirty = True
        self.stale = True  # the job list itself must be re-read from the engine
        # done jobs: (method, files) strongest first, read from the engine once per job
        self.verified: dict[int, list[tuple[str, int]]] = {}

    def rows(self) -> list[JobStatus]:
        """Newest first: what is running or waiting (in the order it runs, so K/J move rows
        visibly), then finished jobs, the latest on top."""
        merged = [merge(j, self.events.get(j.id)) for j in self.jobs]
        waiting = [j for j in merged if j.state not in FINISHED_STATES]
        finished = sorted((j for j in merged if j.state in FINISHED_STATES),
                          key=lambda j: j.id, reverse=True)
        return waiting + finished

    def totals(self) -> dict[str, Any]:
        rows = self.rows()
        active = [r for r in rows if r.state in ("running", "queued", "paused")]
        return {
            "jobs": len(rows),
            "running": sum(r.state == "running" for r in rows),
            "queued": sum(r.state == "queued" for r in rows),
            "paused": sum(r.state == "paused" for r in rows),
            "failed": sum(r.state == "failed" for r in rows),
            "done": sum(r.state == "done" for r in rows),
            "bytes_done": sum(r.bytes_done for r in active),
            "bytes_total": sum(r.bytes_total for r in active),
            "speed": sum(r.speed for r in rows if r.state == "running"),
        }


class _QueueListener:
    """Shared wiring: register with the bridge, keep a model, redraw on a timer."""

    model: QueueModel

    def _listen(self: Any) -> None:
        self.model = QueueModel()
        bridge_for(self.app).register(self)
        self.set_interval(1 / REDRAW_HZ, self._tick)

    def _unlisten(self: Any) -> None:
        bridge_for(self.app).unregister(self)

    def _tick(self: Any) -> None:
        model: QueueModel = self.model
        bridge = bridge_for(self.app)
        if bridge.engine is not getattr(self.app, "engine", None):
            bridge.attach()  # the engine started (or stopped) after this widget mounted
            model.stale = True
        if model.stale:
            model.jobs = bridge.jobs()
            model.stale = False
            model.dirty = True
            for job in model.jobs:
                if job.state != "done":
                    model.verified.pop(job.id, None)  # (retried: counted again when done)
                elif job.id not in model.verified:
                    model.verified[job.id] = _verified_of(bridge, job.id)
        if model.dirty:
            model.dirty = False
            self.redraw()

    def _progress(self: Any, message: TransferProgress) -> None:
        self.model.events[message.job_id] = message.event
        self.model.dirty = True

    def _changed(self: Any, message: TransferChanged) -> None:
        if message.event is not None:
            self.model.events.pop(message.event.job_id, None)
        self.model.stale = True


def _verified_of(bridge: Any, job_id: int) -> list[tuple[str, int]]:
    engine = bridge.attach()
    try:
        files = engine.files(job_id) if engine is not None else []
    except Exception:  # a journal hiccup: shown once the job is next re-read
        return []
    return verified_counts([f.verify for f in files if f.state == "done"])


def verified_text(counts: list[tuple[str, int]]) -> str:
    """A done job's row: its weakest method (every file was checked at least that well)."""
    return verified_label(counts[-1][0]) if counts else ""


class QueueSummary(_QueueListener, Static):
    """One line for the status bar: ``⇅ 1 running · 2 queued · 48% · 12.0 MiB/s``."""

    DEFAULT_CSS = """
    QueueSummary {
        width: auto;
        height: 1;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self._listen()
        self.redraw()

    def on_unmount(self) -> None:
        self._unlisten()

    def summary_text(self) -> str:
        if bridge_for(self.app).attach() is None:
            return "transfers: off"
        t = self.model.totals()
        if not t["jobs"]:
            return "⇅ no transfers"
        parts = []
        for key in ("running", "queued", "paused", "failed"):
            if t[key]:
                parts.append(f"{t[key]} {key}")
        if not parts:
            parts.append(f"{t['done']} done")
        if t["bytes_total"]:
            parts.append(f"{int(100 * t['bytes_done'] / t['bytes_total'])}%")
        if t["speed"]:
            parts.append(speed_text(t["speed"]))
        return "⇅ " + " · ".join(parts)

    def redraw(self) -> None:
        self.update(Text(self.summary_text(), no_wrap=True))

    on_transfer_progress = _QueueListener._progress
    on_transfer_changed = _QueueListener._changed


class QueueTable(ListTable):
    HELP_TITLE = "Transfer queue"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "queue('toggle')", "Pause/resume", id="ferry.queue.pause"),
        Binding("x,delete", "queue('cancel')", "Cancel", id="ferry.queue.cancel"),
        Binding("C", "queue('clear')", "Clear done", id="ferry.queue.clear"),
        Binding("r", "queue('retry')", "Retry", id="ferry.queue.retry"),
        Binding("K,shift+up", "queue('up')", "Move up", id="ferry.queue.move_up"),
        Binding("J,shift+down", "queue('down')", "Move down", id="ferry.queue.move_down"),
        Binding("j", "cursor_down", "Down", show=False, id="ferry.queue.down"),
        Binding("k", "cursor_up", "Up", show=False, id="ferry.queue.up"),
    ]

    def allow_focus(self) -> bool:
        # Only while the panel is shown: hidden, it once took the keys meant for a listing.
        parent = self.parent
        shown = not isinstance(parent, QueuePanel) or parent.has_class("-shown")
        return shown and super().allow_focus()

    async def action_queue(self, what: str) -> None:
        await self.query_ancestor(QueuePanel).act(what)


class QueuePanel(_QueueListener, Vertical):
    """Every transfer of this session: progress, bytes, speed, ETA, state; totals below."""

    DEFAULT_CSS = """
    QueuePanel {
        height: 40%;
        min-height: 12;
        max-height: 50%;
        border: round $primary;
        border-title-align: left;
    }
    QueuePanel QueueTable {
        height: 1fr;
    }
    QueuePanel .queue-detail {
        height: auto;
        max-height: 3;
        color: $error;
        padding: 0 1;
    }
    QueuePanel .queue-totals {
        height: 1;
        color: $foreground-muted;
        padding: 0 1;
    }
    """

    # key, header, width, name width that must remain for the column to be shown
    COLUMNS: ClassVar[list[tuple[str, str, int, int]]] = [
        ("progress", "Progress", PROGRESS_WIDTH, 0),
        ("state", "State", 9, 0),
        ("bytes", "Bytes", 21, 16),
        ("speed", "Speed", 11, 18),
        ("eta", "ETA", 10, 20),
        ("dir", "Dir", 4, 22),
    ]
    ORDER: ClassVar[tuple[str, ...]] = ("name", "dir", "progress", "bytes", "speed", "eta",
                                        "state")

    def compose(self) -> ComposeResult:
        yield QueueTable(cursor_type="row")
        yield Static("", classes="queue-detail")
        yield Static("", classes="queue-totals")

    def plan_columns(self, width: int) -> dict[str, int]:
        """Columns that fit ``width`` (2 cells of padding each); the name takes the rest."""
        chosen: dict[str, int] = {}
        used = 2
        for key, _label, w, keep in self.COLUMNS:
            if width - used - (w + 2) >= max(keep, 12):
                chosen[key] = w
                used += w + 2
        chosen["name"] = max(width - used - 1, 12)
        return chosen

    def on_resize(self) -> None:
        self._fit_columns()

    def redraw(self) -> None:
        self._fit_columns()  # cheap when nothing changed; catches the first real width
        self._draw()

    def _fit_columns(self) -> bool:
        width = self.table.size.width or max(self.size.width - 2, 0)
        if width <= 0:
            return False  # hidden: plan when shown
        plan = self.plan_columns(width)
        if plan == self._columns:
            return False
        self._columns = plan
        labels = {k: label for k, label, _w, _keep in self.COLUMNS} | {"name": "Transfer"}
        table = self.table
        self._keep_cursor = table.cursor_row  # clearing the columns puts it back on row 0
        table.clear(columns=True)
        for key in self.ORDER:
            if key in plan:
                table.add_column(labels[key], key=key, width=plan[key])
        self.model.dirty = True
        return True

    _columns: dict[str, int]
    _keep_cursor: int | None

    def on_mount(self) -> None:
        self.border_title = "Transfers"
        self._columns = {}
        self._keep_cursor = None
        self._listen()
        self.redraw()

    def on_unmount(self) -> None:
        self._unlisten()

    on_transfer_progress = _QueueListener._progress
    on_transfer_changed = _QueueListener._changed

    @property
    def table(self) -> QueueTable:
        return self.query_one(QueueTable)

    def selected(self) -> JobStatus | None:
        rows = self.model.rows()
        row = self.table.cursor_row
        return rows[row] if 0 <= row < len(rows) else None

    def _draw(self) -> None:
        table = self.table
        rows = self.model.rows()
        cursor = table.cursor_row if self._keep_cursor is None else self._keep_cursor
        self._keep_cursor = None
        table.clear()
        table.add_rows([self._cells(r) for r in rows])
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1), animate=False)
        self._update_detail()
        t = self.model.totals()
        jobs = f"{t['jobs']} transfer{'' if t['jobs'] == 1 else 's'}"
        left = max(t["bytes_total"] - t["bytes_done"], 0)
        text = (
            f"{jobs} · {t['running']} running · {t['queued']} queued · "
            f"{t['failed']} failed · {human_size(t['bytes_done'])} of "
            f"{human_size(t['bytes_total'])} moved, {human_size(left)} left"
            if t["bytes_total"]
            else f"{jobs} · {t['done']} done · {t['failed']} failed"
        )
        if t["speed"]:
            text += f" · {speed_text(t['speed'])}"
        self.query_one(".queue-totals", Static).update(Text(text, no_wrap=True))

    def _cells(self, job: JobStatus) -> tuple[Any, ...]:
        total = job.bytes_total
        checked = verified_text(self.model.verified.get(job.id, [])) \
            if job.state == "done" else ""
        cells: dict[str, Any] = {
            "name": Text(display_name(job.label), no_wrap=True, overflow="ellipsis"),
            "dir": "get" if job.direction == "get" else "put",
            "progress": Text(checked, no_wrap=True, overflow="ellipsis") if checked
            else bar(job.bytes_done if job.state != "done" else total, total),
            "bytes": f"{human_size(job.bytes_done)}/{human_size(total)}",
            "speed": speed_text(job.speed) if job.state == "running" else "",
            "eta": eta_text(job.eta, job.state),
            "state": Text(job.state, style=STATE_STYLES.get(job.state, "")),
        }
        return tuple(cells[k] for k in self.ORDER if k in self._columns)

    def _update_detail(self) -> None:
        job = self.selected()
        detail = ""
        if job is not None and job.state == "failed":
            detail = f"error: {display_name(bridge_for(self.app).failure(job))}"
        elif job is not None and len(self.model.verified.get(job.id, [])) > 1:
            detail = "verified: " + ", ".join(
                f"{n} {verified_label(m)}" for m, n in self.model.verified[job.id])
        self.query_one(".queue-detail", Static).update(Text(detail))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_detail()

    def _ask_cancel(self, job: JobStatus) -> None:
        """``x`` on a transfer that is big or under way: ask first (Cancel focused). A
        callback, not ``await``: this runs in the App's key handling (tui/app.py)."""
        from tui.dialogs import ConfirmDialog

        moved = f"{human_size(job.bytes_done)} of {human_size(job.bytes_total)} moved"

        async def done(yes: bool | None) -> None:
            if yes:
                try:
                    await bridge_for(self.app).call("cancel", job.id)
                except (FerryError, RuntimeError) as exc:
                    self.notify(str(exc), title="Transfers", severity="error")
                self.model.stale = True

        self.app.push_screen(
            ConfirmDialog(
                f"Stop {display_name(job.label)}?",
                [moved + ".", "Cancelling removes the partial temporary files; completed "
                 "files stay. r (retry) starts it again."],
                danger=True, confirm_label="Stop transfer",
            ),
            callback=done,
        )

    async def _forget(self, job_ids: list[int] | None) -> None:
        forgotten = await bridge_for(self.app).forget_finished(job_ids)
        if job_ids is None:
            self.notify(f"cleared {len(forgotten)} finished transfer(s)" if forgotten
                        else "no finished transfers to clear", title="Transfers", timeout=3)
        self.model.stale = True

    async def act(self, what: str) -> None:
        bridge = bridge_for(self.app)
        if what == "clear":
            try:
                await self._forget(None)
            except (FerryError, RuntimeError) as exc:
                self.notify(str(exc), title="Transfers", severity="error")
            return
        job = self.selected()
        if job is None:
            return
        try:
            if what == "cancel" and job.state in FINISHED_STATES:
                await self._forget([job.id])  # nothing to stop: the row goes, its files stay
                return
            if what == "toggle":
                if job.state == "paused":
                    await bridge.call("resume", job.id)
                elif job.state in ("running", "queued"):
                    await bridge.call("pause", job.id)
                else:
                    self.notify(f"a {job.state} transfer cannot be paused", severity="warning")
            elif what == "cancel":
                if job.state in ("running", "paused") or (
                    job.state == "queued" and job.bytes_total >= ASK_BEFORE_CANCEL
                ):
                    self._ask_cancel(job)
                    return
                await bridge.call("cancel", job.id)
            elif what == "retry":
                await bridge.call("retry", job.id)
            elif what in ("up", "down"):
                await bridge.call("move", job.id, -1 if what == "up" else 1)
                row = self.table.cursor_row + (-1 if what == "up" else 1)
                self.table.move_cursor(row=max(row, 0))
        except (FerryError, RuntimeError) as exc:
            self.notify(str(exc), title="Transfers", severity="error")
        self.model.stale = True
