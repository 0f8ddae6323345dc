"""The case view of a site with a provider layout (``inbox-outbox`` or ``study-io``).

One row per case/study with its state and the time it got there; the highlighted case's
times and paths underneath. Actions are :mod:`backend.cases` calls run in workers: send a study
(``send_case``: the DICOM checks of backend/dicom/policy.py first — a refusal offers its one
way on, split, send the non-DICOM files too or de-identify, in a confirmation; the upload is a
transfer-engine job, so it shows in the queue), fetch results
(``fetch_results``: polls until the results are stable, downloads and verifies them), open the
downloaded text report in the viewer, and archive (``plan_archive`` shown in a confirmation,
then ``archive(plan=...)`` moves exactly those cases). While the screen is shown a background
poll refreshes the states every ``poll_interval`` seconds and notifies when results become
ready. A case sent de-identified shows its original patient (masked) in the detail line when
the vault is unlocked in this session (backend/dicom/mapping.py); the view never prompts for it
on its own.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from backend.cases import presets
from backend.cases.archiving import archive, plan_archive
from backend.cases.dicomsend import send_case
from backend.cases.fetch import fetch_results
from backend.cases.status import CaseStatus, case_list
from backend.cases.store import ARCHIVED, DOWNLOADED, PROCESSING, READY, SENT, CaseStore
from backend.cases.watch import CaseEvent
from backend.dicom.mapping import MappingStore
from backend.dicom.policy import ContentOptions
from backend.errors import FerryError, PolicyError
from backend.names import display_name
from backend.sshtuning import start_sftp
from backend.transfers.model import verified_label
from tui.dialogs import ConfirmDialog, TextInputDialog, ask
from tui.dialogs.text import plain
from tui.screens import status_bar
from tui.services import ferry
from tui.widgets.list_table import ListTable

POLL_INTERVAL = 15.0
CASE_LAYOUTS = (presets.STUDY_IO, presets.INBOX_OUTBOX)
MAX_PLAN_LINES = 12

_STATE_STYLE = {
    SENT: "",
    PROCESSING: "italic",
    READY: "bold",
    DOWNLOADED: "",
    ARCHIVED: "dim",
}
_STATE_TIME = {
    SENT: "sent_at",
    PROCESSING: "sent_at",
    READY: "ready_at",
    DOWNLOADED: "downloaded_at",
    ARCHIVED: "archived_at",
}


def local_time(stamp: str | None) -> str:
    """A stored UTC ISO time as local ``YYYY-MM-DD HH:MM`` ("—" when unknown)."""
    if not stamp:
        return "—"
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return display_name(stamp)[:16]
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def state_since(case: CaseStatus) -> str:
    return local_time(getattr(case, _STATE_TIME.get(case.state, "sent_at"), None))


def _path_problem(value: str) -> str | None:
    path = Path(os.path.expanduser(value.strip()))
    if not value.strip():
        return "give a study folder or a .zip file"
    if not path.exists():
        return f"no such file or folder: {value.strip()}"
    if not path.is_dir() and path.suffix.lower() != ".zip":
        return "give a study folder or a .zip file"
    return None


class CasesScreen(Screen[None]):
    """Cases of one site; opened from the browser (``c``) on a case-layout site."""

    HELP_TITLE = "Cases"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "send", "Send study", id="ferry.cases.send"),
        Binding("f", "fetch", "Fetch", id="ferry.cases.fetch"),
        Binding("F", "fetch_all", "Fetch all", show=False, id="ferry.cases.fetch_all"),
        Binding("v", "report", "Report", id="ferry.cases.report"),
        Binding("enter", "report", "Report", priority=True, show=False,
                id="ferry.cases.report_enter"),
        Binding("a", "archive", "Archive", id="ferry.cases.archive"),
        # the same key on a study-io site says why there is nothing to archive (same id, so a
        # [keymap] entry moves both)
        Binding("a", "archive_why", show=False, id="ferry.cases.archive"),
        Binding("space", "mark", "Select", show=False, id="ferry.cases.select"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="ferry.cases.reload"),
        Binding("escape", "back", "Back", id="ferry.cases.back"),
    ]

    DEFAULT_CSS = """
    CasesScreen #cases { height: 1fr; }
    CasesScreen #case-detail { height: 2; padding: 0 1; color: $foreground-muted; }
    """

    def __init__(
        self,
        site_name: str,
        *,
        source: Any = None,
        local_path: str | None = None,
        poll_interval: float | None = None,
    ) -> None:
        """``source``: the browser's open ``RemoteSource`` for this site (reused, not closed);
        without it the screen connects itself. ``local_path`` prefills "send a study"."""
        super().__init__()
        self.site_name = site_name
        self.source = source
        self.local_path = local_path
        self.poll_interval = poll_interval or POLL_INTERVAL
        self.site: Any = None
        self.sftp: Any = None
        self._own: tuple[Any, Any] | None = None  # (conn, sftp) this screen opened
        self.cases: list[CaseStatus] = []
        self.marked: set[str] = set()
        self.problems: list[str] = []
        self.loaded = False
        self._states: dict[str, str] | None = None
        self._poll: Timer | None = None
        self._mappings: MappingStore | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(display_name(f"Ferry — cases on {self.site_name}")),
                     classes="screen-title")
        table: DataTable[Any] = ListTable(cursor_type="row", zebra_stripes=True, id="cases")
        table.add_column("Case", key="case")
        table.add_column("State", key="state", width=13)
        table.add_column("Since", key="since", width=16)
        yield table
        yield Static("", id="case-detail")
        yield status_bar()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.loading = True
        self._poll = self.set_interval(self.poll_interval, self._tick, pause=True)
        self._open()

    def on_screen_suspend(self) -> None:
        if self._poll is not None:
            self._poll.pause()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.reload()
            if self._poll is not None:
                self._poll.resume()

    async def on_unmount(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            conn, sftp = own
            with contextlib.suppress(Exception):
                sftp.exit()
            conn.close()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#cases", DataTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Archive is offered only on inbox-outbox sites; elsewhere its key says why."""
        inbox = self.site is None or self.site.layout == presets.INBOX_OUTBOX
        if action == "archive":
            return inbox
        if action == "archive_why":
            return not inbox
        return True

    # ------------------------------------------------------------------ data

    @work(exclusive=True, group="cases-connect", exit_on_error=False)
    async def _open(self) -> None:
        app: Any = self.app
        try:
            if self.source is not None:
                self.site, self.sftp = self.source.site, self.source.sftp
            else:
                site, conn = await app.connect_site(self.site_name)
                try:
                    sftp = await start_sftp(conn)
                except Exception as exc:
                    conn.close()
                    raise FerryError(f"{self.site_name}: no SFTP: {exc}") from None
                self._own = (conn, sftp)
                self.site, self.sftp = site, sftp
                if not self.is_attached:
                    await self.on_unmount()
                    return
            if self.site.layout not in CASE_LAYOUTS:
                raise FerryError(
                    f"site {self.site_name} has the {self.site.layout} layout: no cases; set "
                    "its layout to inbox-outbox or study-io (e on the Sites screen)"
                )
        except FerryError as exc:
            self.table.loading = False
            self._detail(Text(f"not connected: {exc.message}"))
            return
        self.refresh_bindings()
        await self._load()
        if self._poll is not None:
            self._poll.resume()

    def reload(self) -> None:
        self._reload()

    @work(exclusive=True, group="cases-load", exit_on_error=False)
    async def _reload(self) -> None:
        await self._load()

    def _tick(self) -> None:
        if self.sftp is not None and self.app.screen is self:
            self._reload()

    async def _load(self) -> None:
        if self.sftp is None:
            return
        try:
            listed = await case_list(self.site, self.sftp, mappings=self._patients())
        except FerryError as exc:
            self.table.loading = False
            self._detail(Text(f"cannot list cases: {exc.message}"))
            return
        before = self._states
        self._states = {c.case_id: c.state for c in listed.cases}
        if before is not None:
            for case in listed.cases:
                if case.state == READY and before.get(case.case_id) != READY:
                    self.app.notify(f"results ready: {case.case_id} on {self.site_name}",
                                    title="Cases", timeout=8)
        self.cases = listed.cases
        self.problems = listed.problems
        self.marked &= {c.case_id for c in self.cases}
        self._fill()
        self.loaded = True

    def _patients(self) -> MappingStore | None:
        """The vault's mappings if this site has de-identified cases and the vault is open."""
        if self._mappings is None and any(r.deidentified
                                          for r in CaseStore().list(self.site_name)):
            vault = None
            with contextlib.suppress(FerryError):  # never prompts: unlocked, or unattended
                vault = ferry(self.app).session.unlock_unattended()
            if vault is not None:
                self._mappings = MappingStore(vault)
        return self._mappings

    def _fill(self) -> None:
        table = self.table
        keep = self.selected()
        table.clear()
        table.add_rows(
            [
                (
                    Text.assemble(("● " if c.case_id in self.marked else "  ", "bold"),
                                  plain(c.case_id)),
                    Text(c.state, style=_STATE_STYLE.get(c.state, "")),
                    state_since(c),
                )
                for c in self.cases
            ]
        )
        table.loading = False
        ids = [c.case_id for c in self.cases]
        if keep is not None and keep.case_id in ids:
            table.move_cursor(row=ids.index(keep.case_id))
        self._show_detail()
        if self.app.screen is self:
            table.focus()

    def selected(self) -> CaseStatus | None:
        if not self.is_mounted:
            return None
        row = self.table.cursor_row
        if not self.cases or row < 0 or row >= len(self.cases):
            return None
        return self.cases[row]

    def state_of(self, case_id: str) -> str | None:
        return next((c.state for c in self.cases if c.case_id == case_id), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_report()

    def _detail(self, text: Text) -> None:
        self.query_one("#case-detail", Static).update(text)

    def _show_detail(self) -> None:
        case = self.selected()
        if case is None:
            hint = "No cases yet: s sends a study." if self.loaded else ""
            if self.problems:
                hint = f"{len(self.problems)} problem(s): {self.problems[0]}"
            self._detail(plain(hint))
            return
        parts = [f"sent {local_time(case.sent_at)}", f"ready {local_time(case.ready_at)}",
                 f"downloaded {local_time(case.downloaded_at)}"]
        if case.archived_at:
            parts.append(f"archived {local_time(case.archived_at)}")
        if case.patient:
            parts.append(f"patient {case.patient['name']} ({case.patient['id']})")
        elif case.deidentified:
            parts.append("de-identified")
        where = case.report_path or case.local_path or case.result_path or case.remote_path or ""
        self._detail(
            Text.assemble(
                plain(" · ".join(parts)), "\n", plain(where),
                no_wrap=True, overflow="ellipsis",
            )
        )

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def action_mark(self) -> None:
        case = self.selected()
        if case is None:
            return
        self.marked ^= {case.case_id}
        row = self.table.cursor_row
        self._fill()
        self.table.move_cursor(row=min(row + 1, len(self.cases) - 1))

    def _ready(self) -> bool:
        if self.sftp is None:
            self.notify("not connected yet", severity="warning")
            return False
        return True

    def _engine(self) -> Any:
        engine = getattr(self.app, "engine", None)
        if engine is None:
            self.notify("the transfer engine is not running", severity="error")
        return engine

    def action_send(self) -> None:
        if self._ready():
            self._send()

    @work(group="cases-ops", exclusive=False, exit_on_error=False)
    async def _send(self) -> None:
        path = await ask(
            self.app,
            TextInputDialog(
                f"Send a study to {self.site_name}: a study folder or a .zip",
                value=self.local_path or os.getcwd(),
                validator=_path_problem,
            ),
        )
        if not path:
            return
        engine = self._engine()
        if engine is None:
            return
        source = Path(os.path.expanduser(path.strip()))
        options = ContentOptions()
        mappings = None
        for _attempt in range(3):  # each refusal may offer one way on (split, de-identify...)
            self.notify(f"checking and sending {source.name} to {self.site_name}…", timeout=3)
            try:
                if options.deidentify and mappings is None:
                    vault = await ferry(self.app).unlock_vault(create=True)
                    assert vault is not None  # create=True makes one or raises
                    mappings = MappingStore(vault)
                result = await send_case(self.site, self.sftp, engine, source, options=options,
                                         mappings=mappings)
                break
            except PolicyError as exc:
                remedy = _remedy(exc, options)
                lines = [*exc.lines[:MAX_PLAN_LINES]]
                if len(exc.lines) > MAX_PLAN_LINES:
                    lines.append(f"… and {len(exc.lines) - MAX_PLAN_LINES} more")
                if remedy is None:
                    self.notify(exc.message, title="Send study", severity="error", timeout=12)
                    return
                label, why = remedy
                ok = await ask(self.app, ConfirmDialog(exc.message, [*lines, "", why],
                                                       confirm_label=label))
                if not ok:
                    return
            except FerryError as exc:
                self.notify(exc.message, title="Send study", severity="error", timeout=12)
                return
        else:
            return
        if mappings is not None:
            self._mappings = mappings
        for sent in result.sent:
            note = (f" ({len(sent.skipped)} link(s)/special file(s) left out)"
                    if sent.skipped else "")
            self.notify(f"study {sent.study_id} sent: {sent.remote_path} "
                        f"(verified: {verified_label(sent.verified_by)}){note}", title="Cases",
                        timeout=8)
        if result.left_out:
            self.notify("; ".join(result.left_out[:3]), title="Not sent", severity="warning",
                        timeout=10)
        await self._load()

    def action_fetch(self) -> None:
        """The selected cases' (else the highlighted case's) results; ``F`` fetches all."""
        if not self._ready():
            return
        chosen = sorted(self.marked) or ([c.case_id] if (c := self.selected()) else [])
        if not chosen:
            self.notify("no case highlighted (F fetches every ready result)", timeout=4)
            return
        states = {case_id: self.state_of(case_id) for case_id in chosen}
        wanted = [case_id for case_id, state in states.items() if state == READY]
        if not wanted:
            case_id = chosen[0]
            state = states[case_id]
            why = ("already downloaded (Enter opens its report)" if state == DOWNLOADED
                   else f"{state}: no results on the server yet" if state != ARCHIVED
                   else "archived")
            more = f" (and {len(chosen) - 1} more selected)" if len(chosen) > 1 else ""
            self.notify(f"{case_id}{more}: {why}", title="Fetch", timeout=5)
            return
        self._fetch(wanted)

    def action_fetch_all(self) -> None:
        if self._ready():
            self._fetch(None)

    @work(exclusive=True, group="cases-fetch", exit_on_error=False)
    async def _fetch(self, cases: list[str] | None) -> None:
        engine = self._engine()
        if engine is None:
            return
        what = "results" if cases is None else ", ".join(cases[:3]) + (
            " …" if len(cases) > 3 else "")
        self.notify(f"looking for {what}…", timeout=2)

        def on_event(event: CaseEvent) -> None:
            if event.kind == "downloaded":
                self.app.notify(event.message, title="Cases", timeout=6)
            elif event.kind == "problem":
                self.app.notify(event.message, title="Cases", severity="warning", timeout=8)

        try:
            report = await fetch_results(self.site, self.sftp, engine, cases=cases,
                                         on_event=on_event)
        except FerryError as exc:
            self.notify(exc.message, title="Fetch results", severity="error", timeout=12)
            return
        if not report.downloaded:
            waiting = f"; {len(report.waiting)} still being written" if report.waiting else ""
            self.notify(f"no new results{waiting}", title="Cases", timeout=4)
        await self._load()

    def action_report(self) -> None:
        case = self.selected()
        if case is None:
            return
        if not case.report_path:
            hint = "f fetches them" if case.state == READY else "no results downloaded yet"
            self.notify(f"{case.case_id}: no text report ({hint})", severity="warning")
            return
        from backend.sources import LocalSource
        from tui.screens.viewer import ViewerScreen

        report = Path(case.report_path)
        self.app.push_screen(ViewerScreen(LocalSource(str(report.parent)), str(report)))

    def action_archive_why(self) -> None:
        self.notify(
            f"nothing to archive on {self.site_name}: it has the {self.site.layout} layout, "
            "where studies stay in input/ and output/ on the server; archiving (a) is for "
            "inbox-outbox sites", title="Archive", severity="warning", timeout=8,
        )

    def action_archive(self) -> None:
        if not self._ready():
            return
        if self.site.layout != presets.INBOX_OUTBOX:
            self.action_archive_why()
            return
        chosen = sorted(self.marked) or ([c.case_id] if (c := self.selected()) else [])
        if chosen:
            self._archive(chosen)

    @work(group="cases-ops", exclusive=False, exit_on_error=False)
    async def _archive(self, chosen: list[str]) -> None:
        try:
            plan = await plan_archive(self.site, self.sftp, chosen)
        except FerryError as exc:
            self.notify(exc.message, title="Archive", severity="error", timeout=12)
            return
        lines = [f"{len(plan.moves)} case(s) move to the archive (nothing is deleted):"]
        for move in plan.moves[:MAX_PLAN_LINES]:
            lines.append(f"  {move.case_id} → {move.destination}")
        if len(plan.moves) > MAX_PLAN_LINES:
            lines.append(f"  … and {len(plan.moves) - MAX_PLAN_LINES} more")
        lines += [f"  refused: {r}" for r in plan.refused[:MAX_PLAN_LINES]]
        never = [m.case_id for m in plan.moves if self.state_of(m.case_id) != "downloaded"]
        if never:
            lines.append(f"Never downloaded to this machine: {', '.join(never[:MAX_PLAN_LINES])}"
                         + (" …" if len(never) > MAX_PLAN_LINES else "")
                         + " (download them first if you need them)")
        if not plan.moves:
            self.notify("; ".join(plan.refused) or "nothing to archive", title="Archive",
                        severity="warning", timeout=10)
            return
        ok = await ask(
            self.app,
            ConfirmDialog(f"Archive {len(plan.moves)} case(s) on {self.site_name}?", lines,
                          confirm_label="Archive"),
        )
        if not ok:
            return
        try:
            result = await archive(self.site, self.sftp, plan=plan)
        except FerryError as exc:
            self.notify(exc.message, title="Archive", severity="error", timeout=12)
            return
        self.marked.clear()
        if result.failed:
            self.notify("; ".join(result.failed), title="Archive", severity="error", timeout=12)
        self.notify(f"archived {len(result.moved)} case(s)", title="Cases", timeout=5)
        await self._load()


def _remedy(exc: PolicyError, options: ContentOptions) -> tuple[str, str] | None:
    """The one option a refusal can be answered with here, as (button, what it does), and set
    it on ``options``; overriding identifiable data needs a reason: the CLI's
    ``--allow-identifiable --reason`` (docs/cli.md)."""
    if exc.kind == "isolation":
        if "--split" in (exc.hint or "") and not options.split:
            options.split = True
            return "Split", ("Split: one zip per study, each with its own id; files that are "
                             "not DICOM stay behind.")
        if "--allow-non-dicom" in (exc.hint or "") and not options.allow_non_dicom:
            options.allow_non_dicom = True
            return "Send them too", "Send: the files that are not DICOM travel with the images."
    if exc.kind == "identifiable" and not options.deidentify:
        options.deidentify = True
        return "De-identify", ("De-identify: send a copy with the Basic Profile applied; the "
                               "link to the original patient is kept in the vault.")
    return None


def open_cases(screen: Any) -> None:
    """From the browser: the case view of its site (reusing its connection)."""
    app = screen.app
    site_name = getattr(screen, "site_name", None)
    remote = getattr(screen, "_remote", None)
    if not site_name:
        app.notify("open a site first: the case view is per site", severity="warning")
        return
    if remote is None:
        app.notify("wait until the site is connected", severity="warning")
        return
    if remote.site.layout not in CASE_LAYOUTS:
        app.notify(
            f"{site_name} has no case layout; set it to inbox-outbox or study-io "
            "(e on the Sites screen)", severity="warning",
        )
        return
    local_path = None
    with contextlib.suppress(Exception):
        # "send a study" is prefilled from a local pane only: a path on a site is no local
        # source (with a site in each pane there is none, and the dialog starts at the cwd)
        pane = next((p for p in (screen.left, screen.right)
                     if p.source is not None and not p.source.is_remote), None)
        if pane is not None:
            entry = pane.current_entry()
            local_path = pane.path_of(entry) if entry is not None else pane.path
    app.push_screen(CasesScreen(site_name, source=remote, local_path=local_path))
