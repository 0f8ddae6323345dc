"""The dual-pane case browser: local on the left, a site on the right (or both local).

Everything that touches the network runs in workers: connecting (through
``app.connect_site``), listings (in each :class:`~tui.widgets.file_pane.FilePane`), deletes,
renames. Copies and moves are queued on the app's transfer engine (``app.engine``) and show in
the queue panel; a move deletes its sources only after the engine reports the copy done and
verified. Deletes list exactly what will go (``plan_delete``) and need an explicit yes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widgets import Footer, Static

from backend.errors import FerryError, UnsafeNameError
from backend.names import display_name, validate_name
from backend.remote import RemoteEntry
from backend.transfers.model import JobSpec, JobStatus, TransferEvent
from tui.dialogs import ConfirmDialog, TextInputDialog, ask
from tui.engine_bridge import bridge_for
from tui.screens.viewer import FileInfoScreen, ViewerScreen
from tui.widgets.file_pane import FilePane, human_size
from tui.widgets.queue_panel import QueuePanel, QueueSummary
from tui.widgets.sources import LocalSource, RemoteSource, Source

MAX_PLAN_LINES = 12


def name_problem(value: str) -> str | None:
    """Validator for new names typed in a dialog."""
    try:
        validate_name(value)
    except UnsafeNameError as exc:
        return exc.message.replace("remote ", "")
    return None


def describe_plan(items: list[Any]) -> list[str]:
    """Confirmation lines for a delete: totals, then the paths (capped)."""
    files = sum(1 for i in items if i.entry.kind != "dir")
    folders = len(items) - files
    size = sum(i.entry.size for i in items if i.entry.kind == "file")
    lines = [f"{files} file(s) and {folders} folder(s), {human_size(size)} in total:"]
    for item in items[:MAX_PLAN_LINES]:
        suffix = "/" if item.entry.kind == "dir" else ""
        lines.append(f"  {display_name(item.relpath)}{suffix}")
    if len(items) > MAX_PLAN_LINES:
        lines.append(f"  … and {len(items) - MAX_PLAN_LINES} more")
    lines.append("This cannot be undone.")
    return lines


class BrowserScreen(Screen[None]):
    """Two file panes, the transfer queue panel, and the queue summary line."""

    HELP_TITLE = "Browser"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "switch_pane", "Other pane", show=False, id="ferry.browser.switch_pane"),
        Binding("f5", "copy", "Copy", id="ferry.browser.copy"),
        Binding("f6", "move", "Move", id="ferry.browser.move"),
        Binding("f7", "mkdir", "New folder", id="ferry.browser.mkdir"),
        Binding("f2", "rename", "Rename", show=False, id="ferry.browser.rename"),
        Binding("f8,delete", "delete", "Delete", id="ferry.browser.delete"),
        Binding("f3,v", "view", "View", id="ferry.browser.view"),
        Binding("i", "info", "Info", show=False, id="ferry.browser.info"),
        Binding("t", "toggle_queue", "Queue", id="ferry.browser.queue"),
        Binding("L", "audit", "Audit log", show=False, id="ferry.browser.audit"),
        Binding("ctrl+s", "share", "Share…", id="ferry.browser.share"),
        Binding("W", "shares", "Shares", show=False, id="ferry.browser.shares"),
        Binding("c", "cases", "Cases", show=False, id="ferry.browser.cases"),
        Binding("escape", "back", "Back", show=False, id="ferry.browser.back"),
    ]

    DEFAULT_CSS = """
    BrowserScreen #panes {
        height: 1fr;
    }
    BrowserScreen .browser-status {
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
    }
    BrowserScreen QueuePanel {
        display: none;
    }
    BrowserScreen QueuePanel.-shown {
        display: block;
    }
    """

    def __init__(self, site_name: str | None = None, *, local_dir: str | None = None) -> None:
        super().__init__()
        self.site_name = site_name
        self.local_dir = local_dir or os.getcwd()
        self.active_id = "left"
        self._remote: RemoteSource | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        title = f"Ferry — {self.site_name}" if self.site_name else "Ferry — local files"
        yield Static(Text(display_name(title)), classes="screen-title")
        with Horizontal(id="panes"):
            yield FilePane(LocalSource(self.local_dir), id="left")
            if self.site_name:
                yield FilePane(None, id="right")
            else:
                yield FilePane(LocalSource(self.local_dir), id="right")
        yield QueuePanel(id="queue")
        # In the flow, not docked: a second bottom-docked widget would sit under the Footer.
        yield QueueSummary(classes="browser-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.left.set_active(True)
        self.left.focus_table()
        if self.site_name:
            self._connect(self.site_name)

    async def on_unmount(self) -> None:
        remote, self._remote = self._remote, None
        if remote is not None:
            with contextlib.suppress(Exception):
                await remote.close()

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def _connect(self, name: str) -> None:
        app: Any = self.app
        try:
            site, conn = await app.connect_site(name)  # notifies on failure
            source = await RemoteSource.open(site, conn)
        except FerryError as exc:
            self.right.table.loading = False
            self.right.query_one(".pane-status", Static).update(
                Text(f"not connected: {exc.message}", no_wrap=True)
            )
            return
        self._remote = source
        if not self.is_attached:
            await source.close()
            return
        self.right.set_source(source)

    @property
    def left(self) -> FilePane:
        return self.query_one("#left", FilePane)

    @property
    def right(self) -> FilePane:
        return self.query_one("#right", FilePane)

    @property
    def active(self) -> FilePane:
        return self.query_one(f"#{self.active_id}", FilePane)

    @property
    def other(self) -> FilePane:
        return self.right if self.active_id == "left" else self.left

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        node: Any = event.widget
        while node is not None and not isinstance(node, FilePane):
            node = node.parent
        if isinstance(node, FilePane) and node.id != self.active_id:
            self.active_id = node.id or "left"
            self.left.set_active(self.active_id == "left")
            self.right.set_active(self.active_id == "right")

    # ------------------------------------------------------------------ navigation

    def action_switch_pane(self) -> None:
        queue = self.query_one(QueuePanel)
        if queue.has_focus_within:
            self.active.focus_table()
        else:
            self.other.focus_table()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_toggle_queue(self) -> None:
        queue = self.query_one(QueuePanel)
        shown = not queue.has_class("-shown")
        queue.set_class(shown, "-shown")
        if shown:
            queue.table.focus()
        else:
            self.active.focus_table()

    def action_audit(self) -> None:
        from tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen())

    def action_share(self) -> None:
        from tui.dialogs.share import share_file

        entry = self.active.current_entry()
        if entry is not None and self.active.source is not None:
            share_file(self.app, self.active.source, self.active.path_of(entry), entry)

    def action_shares(self) -> None:
        from tui.screens.shares import open_shares

        open_shares(self.app)

    def action_cases(self) -> None:
        from tui.screens.cases import open_cases

        open_cases(self)

    def on_file_pane_file_opened(self, event: FilePane.FileOpened) -> None:
        self._view(event.pane, event.entry)

    def _view(self, pane: FilePane, entry: RemoteEntry) -> None:
        if pane.source is None:
            return
        if entry.kind != "file":
            self.notify("only regular files can be viewed", severity="warning")
            return
        self.app.push_screen(ViewerScreen(pane.source, pane.path_of(entry), entry))

    def action_view(self) -> None:
        entry = self.active.current_entry()
        if entry is not None:
            self._view(self.active, entry)

    def action_info(self) -> None:
        pane = self.active
        entry = pane.current_entry()
        if entry is not None and pane.source is not None:
            self.app.push_screen(FileInfoScreen(pane.source, pane.path_of(entry), entry))

    # ------------------------------------------------------------------ transfers

    def _transfer_spec(self) -> tuple[JobSpec, FilePane, FilePane, list[RemoteEntry]] | None:
        src, dst = self.active, self.other
        if src.source is None or dst.source is None:
            self.notify("wait until both panes are connected", severity="warning")
            return None
        if src.source.is_remote == dst.source.is_remote:
            self.notify(
                "copy between a local pane and a site pane (open a site to transfer)",
                severity="warning",
            )
            return None
        entries = [e for e in src.chosen() if e.kind in ("file", "dir")]
        skipped = len(src.chosen()) - len(entries)
        if skipped:
            self.notify(f"{skipped} link(s)/special file(s) left out", severity="warning")
        if not entries:
            return None
        remote_source = src.source if src.source.is_remote else dst.source
        assert isinstance(remote_source, RemoteSource)
        spec = JobSpec(
            direction="get" if src.source.is_remote else "put",
            site=remote_source.site.name,
            sources=[src.path_of(e) for e in entries],
            destination=dst.path,
            recursive=any(e.kind == "dir" for e in entries),
        )
        return spec, src, dst, entries

    def action_copy(self) -> None:
        planned = self._transfer_spec()
        if planned is not None:
            self._submit(*planned, move=False)

    def action_move(self) -> None:
        planned = self._transfer_spec()
        if planned is not None:
            self._submit(*planned, move=True)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _submit(
        self,
        spec: JobSpec,
        src: FilePane,
        dst: FilePane,
        entries: list[RemoteEntry],
        *,
        move: bool,
    ) -> None:
        bridge = bridge_for(self.app)
        if bridge.attach() is None:
            self.notify("the transfer engine is not running", severity="error")
            return
        if move:
            ok = await ask(
                self.app,
                ConfirmDialog(
                    f"Move {len(entries)} item(s)?",
                    [
                        f"from {display_name(src.source.label if src.source else '')}:"
                        f"{display_name(src.path)}",
                        f"to   {display_name(dst.source.label if dst.source else '')}:"
                        f"{display_name(dst.path)}",
                        "The originals are deleted only after every file is copied and "
                        "verified.",
                    ],
                    confirm_label="Move",
                ),
            )
            if not ok:
                return
        try:
            job_id = await bridge.call("submit", spec)
        except FerryError as exc:
            self.notify(exc.message, title="Transfer", severity="error")
            return
        source = src.source
        sources = list(spec.sources)

        async def finished(status: JobStatus | None, event: TransferEvent) -> None:
            if move and event.state == "done" and source is not None:
                failed = status.files_failed if status else event.files_failed
                if failed:
                    self.notify("move: some files failed; originals kept", severity="warning")
                else:
                    await self._delete_after_move(source, sources)
            for pane in (src, dst):
                if pane.is_attached and pane.source is not None:
                    pane.reload()

        bridge.on_finished(job_id, finished)
        what = "move" if move else "copy"
        self.notify(f"{what} queued: {spec.label}", timeout=3)

    async def _delete_after_move(self, source: Source, paths: list[str]) -> None:
        for path in paths:
            try:
                await source.delete(path)
            except FerryError as exc:
                self.notify(f"move: copied, but the original stays: {exc.message}",
                            severity="warning")

    # ------------------------------------------------------------------ file operations

    def action_mkdir(self) -> None:
        self._mkdir(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _mkdir(self, pane: FilePane) -> None:
        if pane.source is None:
            return
        name = await ask(
            self.app,
            TextInputDialog(
                f"New folder in {display_name(pane.path)}",
                placeholder="folder name",
                validator=name_problem,
            ),
        )
        if not name:
            return
        try:
            await pane.source.mkdir(pane.path, name)
        except FerryError as exc:
            self.notify(exc.message, title="New folder", severity="error")
            return
        pane.reload(focus_name=name)

    def action_rename(self) -> None:
        self._rename(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _rename(self, pane: FilePane) -> None:
        entry = pane.current_entry()
        if entry is None or pane.source is None:
            return
        new = await ask(
            self.app,
            TextInputDialog(
                f"Rename {display_name(entry.name)}", value=entry.name, validator=name_problem
            ),
        )
        if not new or new == entry.name:
            return
        try:
            await pane.source.rename(pane.path, entry.name, new)
        except FerryError as exc:
            self.notify(exc.message, title="Rename", severity="error")
            return
        pane.reload(focus_name=new)

    def action_delete(self) -> None:
        self._delete(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _delete(self, pane: FilePane) -> None:
        source = pane.source
        entries = pane.chosen()
        if source is None or not entries:
            return
        paths = [pane.path_of(e) for e in entries]
        items: list[Any] = []
        try:
            for path in paths:
                items.extend(await source.plan_delete(path))
        except FerryError as exc:
            self.notify(exc.message, title="Delete", severity="error")
            return
        where = f"{display_name(source.label)}:{display_name(pane.path)}"
        confirmed = await ask(
            self.app,
            ConfirmDialog(
                f"Delete {len(entries)} item(s) from {where}?",
                describe_plan(items),
                danger=True,
                confirm_label="Delete",
            ),
        )
        if not confirmed:
            return
        removed = 0
        try:
            for path in paths:
                removed += await source.delete(path)
        except FerryError as exc:
            self.notify(exc.message, title="Delete", severity="error")
        else:
            self.notify(f"deleted {removed} item(s)", timeout=3)
        pane.marked.clear()
        pane.reload()
