"""The audit-log screen: Ferry's hash-chained audit log, newest first, filterable as you type.

Rows come from :meth:`backend.audit.AuditLog.query` in a thread worker (SQLite never blocks the
event loop); the filter matches the event name or any field (case-insensitive). The selected
row's fields are shown in full below the table. Field values are shown as plain text.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from backend.audit import AuditLog, AuditRecord
from backend.errors import FerryError
from backend.names import display_name
from tui.screens import status_bar
from tui.widgets.list_table import ListTable

LIMIT = 2000
FILTER_DELAY = 0.15


def summary(record: AuditRecord) -> str:
    """The record's fields on one line: ``site=demo size=123 …``."""
    parts = []
    for key, value in record.fields.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}={shown}")
    return display_name(" ".join(parts))


class AuditScreen(Screen[None]):
    """Who moved which file when, with checksums; shares created, downloaded, purged."""

    HELP_TITLE = "Audit log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="ferry.audit.close"),
        Binding("slash", "focus_filter", "Filter", id="ferry.audit.filter"),
        Binding("ctrl+r", "reload", "Reload", id="ferry.audit.reload"),
    ]

    DEFAULT_CSS = """
    AuditScreen #audit-filter {
        height: 1;
        border: none;
        padding: 0 1;
    }
    AuditScreen DataTable {
        height: 1fr;
    }
    AuditScreen #audit-detail {
        height: auto;
        max-height: 6;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self, log: AuditLog | None = None) -> None:
        super().__init__()
        self._log = log
        self.records: list[AuditRecord] = []
        self._filter_timer: Any = None

    def compose(self) -> ComposeResult:
        yield Static("Ferry — Audit log (newest first)", classes="screen-title")
        yield Input(placeholder="/ filter: event or any field", id="audit-filter")
        table: DataTable[Any] = ListTable(cursor_type="row", id="audit-table")
        table.add_column("#", key="id", width=6)
        table.add_column("When (UTC)", key="ts", width=19)
        table.add_column("Event", key="event", width=20)
        table.add_column("Actor", key="actor", width=10)
        table.add_column("Details", key="details")
        yield table
        yield Static("", id="audit-detail")
        yield status_bar()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.reload()

    @property
    def audit_log(self) -> AuditLog:
        if self._log is None:
            self._log = AuditLog()
        return self._log

    def action_close(self) -> None:
        if self.query_one(Input).has_focus and self.query_one(Input).value:
            self.query_one(Input).value = ""
            return
        self.dismiss()

    def action_focus_filter(self) -> None:
        self.query_one(Input).focus()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._query(self.query_one(Input).value.strip())

    @work(exclusive=True, group="audit", exit_on_error=False)
    async def _query(self, text: str) -> None:
        try:
            records = await asyncio.to_thread(self.audit_log.query, None, None, LIMIT, text or None)
        except FerryError as exc:
            self.notify(exc.message, title="Audit log", severity="error")
            return
        records.reverse()  # newest first
        self.records = records
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows(
            [
                (
                    str(r.id),
                    r.ts.replace("T", " ")[:19],
                    Text(display_name(r.event)),
                    Text(display_name(r.actor)),
                    Text(summary(r), no_wrap=True, overflow="ellipsis"),
                )
                for r in records
            ]
        )
        self._show_detail()

    @on(Input.Changed, "#audit-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self.reload)

    @on(Input.Submitted, "#audit-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        table = self.query_one(DataTable)
        detail = self.query_one("#audit-detail", Static)
        if not self.records:
            detail.update(Text("no audit records match" if self.query_one(Input).value
                               else "the audit log is empty"))
            return
        row = min(max(table.cursor_row, 0), len(self.records) - 1)
        record = self.records[row]
        lines = [f"#{record.id} {record.ts} {record.event} by {record.actor}"]
        for key, value in record.fields.items():
            lines.append(f"  {key}: {value}")
        detail.update(Text("\n".join(display_name(line) for line in lines)))
