"""The dual-pane case browser: local on the left, a site on the right; ``o`` opens any saved
site (or local files) in the focused pane, so both panes can show sites.

Everything that touches the network runs in workers: connecting (through
``app.connect_site``), listings (in each :class:`~tui.widgets.file_pane.FilePane`), deletes,
renames. Copies and moves are queued on the app's transfer engine (``app.engine``) and show in
the queue panel. A move is a journaled job (backend/transfers/moves.py): whichever process
ends it deletes each original only after its copy is done and verified, so a move interrupted
by quitting Ferry completes when the queue next runs. Between two site panes copies and moves
go through :mod:`backend.relay` (download to private staging, then upload; both legs show in
the queue and are journaled the same way); a move between two folders of one site is a
server-side rename when the server allows it. Local-to-local copies are refused.
Deletes list exactly what will go (``plan_delete``) and need an explicit yes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widgets import Footer, Static

from backend.errors import FerryError, PermissionDeniedError, TransferError, UnsafeNameError
from backend.names import display_name, validate_name
from backend.relay import RelayResult, RelaySpec, relay_copy, relay_move
from backend.remote import RemoteEntry, move_by_rename
from backend.sources import LocalSource, RemoteSource
from backend.transfers import moves
from backend.transfers.crypt import SUFFIX as CRYPT_SUFFIX
from backend.transfers.model import JobSpec, JobStatus, TransferEvent
from backend.units import human_size
from tui.dialogs import ConfirmDialog, TextInputDialog, ask
from tui.dialogs.conflict import ConflictDialog
from tui.dialogs.site_picker import PaneChoice, SitePickerDialog
from tui.engine_bridge import bridge_for
from tui.screens.viewer import FileInfoScreen, ViewerScreen
from tui.widgets.file_pane import FilePane
from tui.widgets.queue_panel import QueuePanel, QueueSummary

MAX_PLAN_LINES = 12


def name_problem(value: str) -> str | None:
    """Validator for new names typed in a dialog."""
    try:
        validate_name(value)
    except UnsafeNameError as exc:
        return exc.message.replace("remote ", "")
    return None


def free_name(pane: FilePane, keep: str | None = None) -> Callable[[str], str | None]:
    """Validator for a new name in ``pane``'s folder: safe, and not taken (``keep``: the
    entry's own name, for a rename). The server's own refusal is shown by the dialog too."""
    taken = {e.name for e in pane.entries}

    def check(value: str) -> str | None:
        problem = name_problem(value)
        if problem is None and value != keep and value in taken:
            problem = f"{display_name(value)} already exists here; pick another name"
        return problem

    return check


def describe_plan(items: list[Any]) -> list[str]:
    """Confirmation lines for a delete: totals, then the paths (capped)."""
    files = sum(1 for i in items if i.entry.kind != "dir")
    folders = len(items) - files
    size = sum(i.entry.size for i in items if i.entry.kind == "file")
    lines = [f"{files} file(s) and {folders} folder(s), {human_size(size, compact=True)} in total:"]
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
    # Focus is ours to place: the left listing, once it is shown (FilePane.focus_table).
    # Textual's automatic pick ran while both listings were still loading and could land on
    # a hidden widget (the filter field, the queue table), which then took the user's keys.
    AUTO_FOCUS = None
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
        Binding("ctrl+s,w", "share", "Share…", id="ferry.browser.share"),
        Binding("W", "shares", "Shares", show=False, id="ferry.browser.shares"),
        Binding("o", "pane_site", "Open site", id="ferry.browser.pane_site",
                tooltip="Open a saved site (or local files) in this pane"),
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

    def __init__(
        self,
        site_name: str | None = None,
        *,
        local_dir: str | None = None,
        left_site: str | None = None,
    ) -> None:
        """``site_name`` opens in the right pane, ``left_site`` (if given) in the left one
        instead of local files."""
        super().__init__()
        self._initial_site = site_name
        self.left_site = left_site
        self.local_dir = local_dir or os.getcwd()
        self.active_id = "left"
        self._remotes: dict[str, RemoteSource] = {}  # pane id -> its open connection
        # connections of sites a pane switched away from (a listing may still use one), so
        # they close with the screen
        self._retired: list[RemoteSource] = []

    @property
    def site_name(self) -> str | None:
        """The site the focused pane shows (else the other pane's, else the starting one)."""
        remote = self._remote
        return remote.site.name if remote is not None else self._initial_site

    @property
    def _remote(self) -> RemoteSource | None:
        """The focused pane's site connection, else the other pane's (the case view uses it)."""
        other = "right" if self.active_id == "left" else "left"
        return self._remotes.get(self.active_id) or self._remotes.get(other)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        title = f"Ferry — {self._initial_site}" if self._initial_site else "Ferry — local files"
        if self.left_site:
            title = f"Ferry — {self.left_site} ⇄ {self._initial_site or 'local files'}"
        yield Static(Text(display_name(title)), classes="screen-title")
        with Horizontal(id="panes"):
            yield FilePane(None if self.left_site else LocalSource(self.local_dir), id="left")
            if self._initial_site:
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
        if self.left_site:
            self.open_in_pane(self.left, self.left_site)
        if self._initial_site:
            self.open_in_pane(self.right, self._initial_site)

    async def on_unmount(self) -> None:
        remotes, self._remotes = [*self._remotes.values(), *self._retired], {}
        self._retired = []
        for remote in remotes:
            with contextlib.suppress(Exception):
                await remote.close()

    def open_in_pane(self, pane: FilePane, site_name: str | None) -> None:
        """Switch ``pane`` to ``site_name`` (None: local files); connects in a worker."""
        old = self._remotes.pop(pane.id or "", None)
        if old is not None:
            self._retired.append(old)
        if site_name is None:
            self.workers.cancel_group(self, f"connect-{pane.id}")
            pane.set_source(LocalSource(self.local_dir))
            return
        pane.show_connecting(site_name)
        self.run_worker(self._connect(pane, site_name), group=f"connect-{pane.id}",
                        exclusive=True, exit_on_error=False)

    async def _connect(self, pane: FilePane, name: str) -> None:
        app: Any = self.app
        conn: Any = None
        try:
            site, conn = await app.connect_site(name)  # notifies on failure
            source = await RemoteSource.open(site, conn)
        except FerryError as exc:
            pane.show_not_connected(name, exc.message)
            return
        except asyncio.CancelledError:  # the pane was switched to another site meanwhile
            if conn is not None:
                conn.close()
            raise
        if not self.is_attached or pane.source is not None:
            await source.close()  # the screen closed, or the pane was switched meanwhile
            return
        self._remotes[pane.id or ""] = source
        pane.set_source(source)

    def action_pane_site(self) -> None:
        self._pick_site(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _pick_site(self, pane: FilePane) -> None:
        app: Any = self.app
        try:
            sites = app.store.list()
        except FerryError as exc:
            self.notify(exc.message, title="Sites", severity="error")
            return
        remote = self._remotes.get(pane.id or "")
        side = "left" if pane is self.left else "right"
        choice: PaneChoice | None = await ask(
            self.app,
            SitePickerDialog(f"Open in the {side} pane", sites,
                             current=remote.site.name if remote else None),
        )
        if choice is None or not pane.is_attached:
            return
        self.open_in_pane(pane, choice.site)
        pane.focus_table()

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

    def _transferable(self, src: FilePane) -> list[RemoteEntry]:
        entries = [e for e in src.chosen() if e.kind in ("file", "dir")]
        skipped = len(src.chosen()) - len(entries)
        if skipped:
            self.notify(f"{skipped} link(s)/special file(s) left out", severity="warning")
        return entries

    def _transfer_spec(self) -> tuple[JobSpec, FilePane, FilePane, list[RemoteEntry]] | None:
        src, dst = self.active, self.other
        if src.source is None or dst.source is None:
            self.notify("wait until both panes are connected", severity="warning")
            return None
        if not src.source.is_remote and not dst.source.is_remote:
            self.notify(
                "both panes show local files: open a site in one of them (o) to transfer",
                severity="warning",
            )
            return None
        entries = self._transferable(src)
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
        self._copy_or_move(move=False)

    def action_move(self) -> None:
        self._copy_or_move(move=True)

    def _copy_or_move(self, *, move: bool) -> None:
        src, dst = self.active, self.other
        if isinstance(src.source, RemoteSource) and isinstance(dst.source, RemoteSource):
            entries = self._transferable(src)
            if entries:
                self._relay(src, dst, entries, move=move)
            return
        planned = self._transfer_spec()
        if planned is not None:
            self._submit(*planned, move=move)

    async def _confirm_move(self, src: FilePane, dst: FilePane,
                            entries: list[RemoteEntry]) -> bool:
        confirmed = await ask(
            self.app,
            ConfirmDialog(
                f"Move {display_name(entries[0].name)}?" if len(entries) == 1
                else f"Move {len(entries)} items ({display_name(entries[0].name)}, …)?",
                [
                    f"from {display_name(src.source.label if src.source else '')}:"
                    f"{display_name(src.path)}",
                    f"to   {display_name(dst.source.label if dst.source else '')}:"
                    f"{display_name(dst.path)}",
                    "Each original is deleted only once its copy is verified (also if "
                    "Ferry quits first: the move completes at the next start); any that "
                    "cannot be are kept and named.",
                ],
                confirm_label="Move",
            ),
        )
        return confirmed is True

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _relay(self, src: FilePane, dst: FilePane, entries: list[RemoteEntry], *,
                     move: bool) -> None:
        """Site to site: check, confirm a move, then hand the relay to an App worker (it keeps
        running when this screen closes; its two engine jobs show in the queue)."""
        source, target = src.source, dst.source
        assert isinstance(source, RemoteSource) and isinstance(target, RemoteSource)
        engine = bridge_for(self.app).attach()
        if engine is None:
            self.notify("the transfer engine is not running", severity="error")
            return
        spec = RelaySpec(
            source_site=source.site.name,
            sources=[src.path_of(e) for e in entries],
            dest_site=target.site.name,
            destination=dst.path,
            recursive=any(e.kind == "dir" for e in entries),
        )
        try:
            spec.validate()
        except FerryError as exc:
            self.notify(exc.message, title="Copy", severity="error")
            return
        if move and not await self._confirm_move(src, dst, entries):
            return
        if move and source.site.name == target.site.name:
            renamed = await self._rename_on_server(src, dst, spec)
            if renamed is None:
                return
            spec = renamed
        what = "move" if move else "copy"
        self.notify(f"{what} queued: {spec.label} (download, then upload)", timeout=3)
        self.app.run_worker(
            run_relay(self.app, engine, spec, move=move, panes=(src, dst)),
            group="relay", exclusive=False, exit_on_error=False,
        )

    async def _rename_on_server(self, src: FilePane, dst: FilePane,
                                spec: RelaySpec) -> RelaySpec | None:
        """A move between two folders of one site: a server-side rename for each item
        (never replacing). Returns a relay of what the server would not rename, or None."""
        source = src.source
        assert isinstance(source, RemoteSource)
        left: list[str] = []
        for path in spec.sources:
            target = f"{dst.path.rstrip('/')}/{path.rstrip('/').rsplit('/', 1)[-1]}"
            try:
                await move_by_rename(source.sftp, path, target)
            except (PermissionDeniedError, TransferError):
                left.append(path)  # e.g. a server that refuses renames: copy and delete
            except FerryError as exc:
                self.notify(exc.message, title="Move", severity="error")
        for pane in (src, dst):
            if pane.is_attached and pane.source is not None:
                pane.reload()
        if not left:
            moved = len(spec.sources)
            self.notify(f"{moved} item(s) moved (renamed on the server)", title="Move",
                        timeout=4)
            return None
        return RelaySpec(spec.source_site, left, spec.dest_site, spec.destination,
                         recursive=spec.recursive)

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
        if move and not await self._confirm_move(src, dst, entries):
            return
        if move:  # journaled: the originals go once verified, even after a restart
            spec = replace(spec, tag=moves.TAG)
        specs = await self._ask_conflicts(spec, dst, entries)
        if specs is None:
            return
        what = "move" if move else "copy"
        if not specs:
            self.notify(f"nothing to {what}: every item was skipped", timeout=4)
            return

        def finished(status: JobStatus | None, event: TransferEvent) -> None:
            for pane in (src, dst):
                if pane.is_attached and pane.source is not None:
                    pane.reload()

        for job in specs:
            try:
                job_id = await bridge.submit(job)
            except FerryError as exc:
                self.notify(exc.message, title="Transfer", severity="error")
                return
            bridge.on_finished(job_id, finished)
            self.notify(f"{what} queued: {job.label}", timeout=3)

    async def _ask_conflicts(self, spec: JobSpec, dst: FilePane,
                             entries: list[RemoteEntry]) -> list[JobSpec] | None:
        """The file-exists question (tui/dialogs/conflict.py) for each item whose name the
        destination folder already has, until *apply to all*; returns one job per chosen
        policy (``on_conflict``; skipped items left out), or None when cancelled. Items that
        do not exist there go with the first job (their policy never matters)."""
        target = dst.source
        assert target is not None
        try:
            listing = await target.list(dst.path)
        except FerryError:
            return [spec]  # the engine reports a destination it cannot list
        there = {e.name: e for e in listing.entries}
        site = self._remotes.get("right" if dst is self.right else "left")
        encrypted = site is not None and site.site.encrypt_at_rest

        def existing(entry: RemoteEntry) -> RemoteEntry | None:
            """What the item would land on: an upload to an encrypted site is NAME.ferry, a
            download of NAME.ferry from one is NAME (docs/security.md)."""
            names = [entry.name]
            if entry.kind == "file" and spec.direction == "put" and encrypted:
                names.append(entry.name + CRYPT_SUFFIX)
            if entry.kind == "file" and spec.direction == "get" and entry.name.endswith(
                    CRYPT_SUFFIX) and self._remote is not None \
                    and self._remote.site.encrypt_at_rest:
                names.append(entry.name[: -len(CRYPT_SUFFIX)])
            return next((there[n] for n in names if n in there), None)

        # a file onto a folder (or the reverse) is no question of policy: the engine refuses
        # it and the job says why (docs/transfers.md)
        clashes = [(path, e, found) for path, e in zip(spec.sources, entries, strict=True)
                   if (found := existing(e)) is not None
                   and (found.kind == "dir") == (e.kind == "dir")]
        if not clashes:
            return [spec]
        chosen: dict[str, str] = {}
        policy_for_all: str | None = None
        for index, (path, entry, found) in enumerate(clashes):
            if policy_for_all is None:
                answer = await ask(self.app, ConflictDialog(
                    display_name(entry.name),
                    f"{display_name(target.label)}:{display_name(dst.path)}",
                    entry, found, others=len(clashes) - index - 1,
                ))
                if answer is None:
                    return None
                if answer.apply_all:
                    policy_for_all = answer.policy
                chosen[path] = answer.policy
            else:
                chosen[path] = policy_for_all
        groups: dict[str, list[str]] = {}
        for path in spec.sources:
            policy = chosen.get(path)
            if policy is None:  # no clash: joins the first job
                policy = next((p for p in chosen.values() if p != "skip"), spec.on_conflict)
            if policy != "skip":
                groups.setdefault(policy, []).append(path)
        return [replace(spec, sources=paths, on_conflict=policy)  # type: ignore[arg-type]  # policies from the dialog are ConflictPolicy
                for policy, paths in groups.items()]

    # ------------------------------------------------------------------ file operations

    def action_mkdir(self) -> None:
        self._mkdir(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _mkdir(self, pane: FilePane) -> None:
        if pane.source is None:
            return
        source, path = pane.source, pane.path
        name = await ask(
            self.app,
            TextInputDialog(
                f"New folder in {display_name(path)}",
                placeholder="folder name",
                validator=free_name(pane),
                apply=lambda name: source.mkdir(path, name),
            ),
        )
        if name:
            pane.reload(focus_name=name)

    def action_rename(self) -> None:
        self._rename(self.active)

    @work(group="ops", exclusive=False, exit_on_error=False)
    async def _rename(self, pane: FilePane) -> None:
        entry = pane.current_entry()
        if entry is None or pane.source is None:
            return
        source, path = pane.source, pane.path

        async def rename(new: str) -> None:
            if new != entry.name:
                await source.rename(path, entry.name, new)

        new = await ask(
            self.app,
            TextInputDialog(
                f"Rename {display_name(entry.name)}", value=entry.name,
                validator=free_name(pane, keep=entry.name), apply=rename,
            ),
        )
        if new and new != entry.name:
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


async def run_relay(app: Any, engine: Any, spec: RelaySpec, *, move: bool,
                    panes: tuple[FilePane, ...] = ()) -> RelayResult | None:
    """Run one site-to-site copy or move (an App worker), report the outcome, and reload the
    panes that show either end if they are still on screen. Quitting Ferry leaves the relay
    queued (its legs are journaled): the next start completes it."""
    what = "Move" if move else "Copy"
    try:
        if move:
            result = await relay_move(engine, spec, cancel_on_exit=False)
        else:
            result = await relay_copy(engine, spec, cancel_on_exit=False)
    except FerryError as exc:
        app.notify(exc.message, title=what, severity="error")
        return None
    if result.ok and result.error:  # e.g. moved copy done but the original stays
        app.notify(f"{spec.label}: {result.error}", title=what, severity="warning", timeout=12)
    elif result.ok:
        done = "moved" if move else "copied"
        app.notify(f"{spec.label}: {result.files_done} file(s) {done}", title=what, timeout=5)
    elif result.state == "cancelled":
        app.notify(f"{spec.label}: cancelled", title=what, severity="warning")
    else:
        kept = " (the originals stay)" if move else ""
        app.notify(f"{spec.label}: {result.error}{kept}", title=what, severity="error",
                   timeout=12)
    for pane in panes:
        if pane.is_attached and pane.source is not None:
            pane.reload()
    return result
