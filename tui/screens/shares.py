"""The Shares screen (every share: name, recipients, expiry countdown, downloads, state; revoke,
extend, add a recipient) and the App-level watcher that turns downloads into notifications.

Everything goes through the share service's admin API (:class:`ShareClient`); this module only
asks and shows. :func:`start_share_events` runs one App-level worker that long-polls the
service's events (``/api/events``) and, for each completed download, notifies and refreshes
every Shares screen on the stack. It waits quietly while no service is running.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import humanize
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from backend.errors import FerryError, ShareError
from backend.shares.client import EventJSON, ShareClient, ShareJSON
from backend.shares.policy import parse_duration
from backend.sites.model import local_user
from tui.dialogs import ConfirmDialog, MessageDialog, TextInputDialog, ask
from tui.dialogs.share import error_line, parse_recipients
from tui.dialogs.text import plain
from tui.screens import status_bar
from tui.widgets.list_table import ListTable

log = logging.getLogger("ferry.tui.shares")

RETRY_SECONDS = 10.0
EVENT_WAIT = 30.0

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def share_state(share: ShareJSON) -> str:
    """active / expired / revoked / exhausted / purged (a revoked share stays "revoked")."""
    if share.get("revoked_at"):
        return "revoked"
    return str(share.get("status", ""))


def countdown(share: ShareJSON, now: datetime) -> str:
    """Time left while the share lives ("in 2d 23h", "in 5h 12m", "in 9m"), else "—"."""
    state = share_state(share)
    expires = _when(share.get("expires_at"))
    if state != "active" or expires is None:
        return "—"
    if expires <= now:
        return "expired"
    minutes = max(1, int((expires - now).total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"in {days}d {hours}h"
    return f"in {hours}h {mins}m" if hours else f"in {mins}m"


def expires_in(share: ShareJSON, now: datetime) -> str:
    """The same in words, for the details ("in 2 days")."""
    expires = _when(share.get("expires_at"))
    if expires is None:
        return ""
    words = humanize.naturaldelta(expires - now)
    return f"in {words}" if expires > now else f"{words} ago"


def recipients_text(share: ShareJSON) -> str:
    emails = [str(r.get("email") or "(link)") for r in share.get("recipients", [])]
    if not emails:
        return "—"
    return emails[0] + (f" +{len(emails) - 1}" if len(emails) > 1 else "")


def _valid_duration(value: str) -> str | None:
    try:
        parse_duration(value)
    except FerryError as exc:
        return exc.message
    return None


def _valid_email(value: str) -> str | None:
    try:
        if len(parse_recipients(value)) != 1:
            return "one e-mail address"
    except FerryError as exc:
        return exc.message
    return None


class SharesScreen(Screen[None]):
    """Every share of the running share service."""

    HELP_TITLE = "Shares"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "details", "Details", priority=True, id="ferry.shares.details"),
        Binding("x,delete", "revoke", "Revoke", id="ferry.shares.revoke"),
        Binding("e", "extend", "Extend", id="ferry.shares.extend"),
        Binding("a", "add_recipient", "Add recipient", id="ferry.shares.add_recipient"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="ferry.shares.reload"),
        Binding("escape", "back", "Back", id="ferry.shares.back"),
    ]

    DEFAULT_CSS = """
    SharesScreen #shares { height: 1fr; }
    SharesScreen #share-detail { height: 2; padding: 0 1; color: $foreground-muted; }
    """

    def __init__(self, *, now: Clock | None = None,
                 client: Callable[[], ShareClient] = ShareClient) -> None:
        super().__init__()
        self.now: Clock = now or _utcnow
        self.make_client = client
        self.shares: list[ShareJSON] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("Ferry — Shares", classes="screen-title")
        table: DataTable[Any] = ListTable(cursor_type="row", zebra_stripes=True, id="shares")
        table.add_column("Name", key="name", width=20)
        table.add_column("Recipients", key="recipients", width=22)
        table.add_column("Expires", key="expires", width=11)
        table.add_column("DL", key="downloads", width=3)
        table.add_column("State", key="state", width=9)
        yield table
        yield Static("", id="share-detail")
        yield status_bar()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.loading = True
        self.reload()
        start_share_events(self.app)

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.reload()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#shares", DataTable)

    # ------------------------------------------------------------------ data

    @work(exclusive=True, group="shares-load", exit_on_error=False)
    async def reload(self, select: str | None = None) -> None:
        current = self.selected()
        keep = select or (current["id"] if current else None)
        try:
            shares = await self.make_client().list()
        except FerryError as exc:
            self.table.loading = False
            self.query_one("#share-detail", Static).update(plain(error_line(exc)))
            return
        shares.sort(key=lambda s: str(s.get("created_at", "")), reverse=True)
        self.shares = shares
        self._fill(keep)
        self.loaded = True

    def _fill(self, keep: str | None = None) -> None:
        table = self.table
        now = self.now()
        table.clear()
        table.add_rows(
            [
                (
                    plain(str(s.get("name", ""))),
                    plain(recipients_text(s)),
                    countdown(s, now),
                    str(s.get("downloads", 0)),
                    _state_text(share_state(s)),
                )
                for s in self.shares
            ]
        )
        table.loading = False
        ids = [s.get("id") for s in self.shares]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        self._show_detail()
        table.focus()

    def selected(self) -> ShareJSON | None:
        row = self.table.cursor_row if self.is_mounted else -1
        if not self.shares or row < 0 or row >= len(self.shares):
            return None
        return self.shares[row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        share = self.selected()
        detail = self.query_one("#share-detail", Static)
        if share is None:
            detail.update("No shares yet: press ctrl+s on a file in the browser to share it."
                          if self.loaded or not self.shares else "")
            return
        emails = ", ".join(str(r.get("email") or "(link)") for r in share.get("recipients", []))
        expires = str(share.get("expires_at", ""))[:16].replace("T", " ")
        limit = share.get("max_downloads") or 0
        why = str(share.get("purge_reason") or "")
        reason = f" ({why})" if why and why != share_state(share) else ""  # not "revoked (revoked)"
        detail.update(
            Text.assemble(
                f"{share.get('id', '')} · {share_state(share)}{reason} · expires {expires} UTC · "
                f"limit {limit or 'none'}/link\n",
                plain(emails or "no recipients"),
                no_wrap=True, overflow="ellipsis",
            )
        )

    def downloaded(self) -> None:
        """A download happened (the event watcher calls this): refresh the table."""
        self.reload()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def _require(self) -> ShareJSON | None:
        share = self.selected()
        if share is None:
            self.notify("no share selected", severity="warning")
        return share

    def action_details(self) -> None:
        share = self._require()
        if share is None:
            return
        lines: list[str | Text] = [
            Text.assemble(("Name      ", "bold"), plain(str(share.get("name", "")))),
            Text.assemble(("State     ", "bold"), plain(share_state(share))),
            Text.assemble(("Expires   ", "bold"),
                          plain(str(share.get("expires_at", ""))[:19].replace("T", " ")
                                + f" UTC ({expires_in(share, self.now())})")),
            Text.assemble(("Size      ", "bold"), plain(f"{share.get('size', 0):,} bytes")),
            Text.assemble(("SHA-256   ", "bold"), plain(str(share.get("sha256", "")))),
            Text("Recipients (downloads):", style="bold"),
        ]
        for r in share.get("recipients", []):
            lines.append(plain(f"  {r.get('email') or '(link)'}  {r.get('downloads', 0)}"))
        self.app.push_screen(MessageDialog(f"Share {share.get('id', '')}", lines))

    def action_revoke(self) -> None:
        share = self._require()
        if share is not None:
            self._revoke(share)

    @work(group="shares-ops", exclusive=False, exit_on_error=False)
    async def _revoke(self, share: ShareJSON) -> None:
        ok = await ask(
            self.app,
            ConfirmDialog(
                f"Revoke share {share.get('id', '')}?",
                [
                    f"{share.get('name', '')} — {len(share.get('recipients', []))} link(s) "
                    "stop working now.",
                    "The stored file and its key are deleted. This cannot be undone.",
                ],
                danger=True,
                confirm_label="Revoke",
            ),
        )
        if not ok:
            return
        try:
            await self.make_client().revoke(str(share["id"]), actor=_actor())
        except FerryError as exc:
            self.notify(error_line(exc), title="Revoke", severity="error", timeout=10)
            return
        self.notify(f"revoked share {share['id']}", timeout=4)
        self.reload(select=str(share["id"]))

    def action_extend(self) -> None:
        share = self._require()
        if share is not None:
            self._extend(share)

    @work(group="shares-ops", exclusive=False, exit_on_error=False)
    async def _extend(self, share: ShareJSON) -> None:
        value = await ask(
            self.app,
            TextInputDialog(
                f"New expiry for {share.get('name', '')}, counted from now (e.g. 1d, 3d, 12h)",
                value="3d",
                validator=_valid_duration,
            ),
        )
        if not value:
            return
        try:
            await self.make_client().extend(str(share["id"]), value.strip(), actor=_actor())
        except FerryError as exc:
            self.notify(error_line(exc), title="Extend", severity="error", timeout=10)
            return
        self.notify(f"share {share['id']} now expires in {value.strip()}", timeout=4)
        self.reload(select=str(share["id"]))

    def action_add_recipient(self) -> None:
        share = self._require()
        if share is not None:
            self._add_recipient(share)

    @work(group="shares-ops", exclusive=False, exit_on_error=False)
    async def _add_recipient(self, share: ShareJSON) -> None:
        email = await ask(
            self.app,
            TextInputDialog(
                f"Add a recipient to {share.get('name', '')}",
                placeholder="name@example.org",
                validator=_valid_email,
            ),
        )
        if not email:
            return
        try:
            link = await self.make_client().add_recipient(
                str(share["id"]), parse_recipients(email)[0], actor=_actor()
            )
        except FerryError as exc:
            self.notify(error_line(exc), title="Add recipient", severity="error", timeout=10)
            return
        self.reload(select=str(share["id"]))
        await ask(
            self.app,
            MessageDialog(
                f"New link for {link.get('email', '')}",
                ["Their own link (the password is unchanged; send it by another channel):"],
                copy_text=str(link.get("url", "")),
            ),
        )


def _state_text(state: str) -> Text:
    style = {"active": "bold", "revoked": "italic", "exhausted": "italic"}.get(state, "dim")
    return Text(state, style=style)


def _actor() -> str:
    return local_user()


# ---------------------------------------------------------------------- App-level watcher


def open_shares(app: App[Any]) -> None:
    """Show the Shares screen (from the browser, the Sites screen or the palette)."""
    if not isinstance(app.screen, SharesScreen):
        app.push_screen(SharesScreen())


def refresh_shares(app: App[Any]) -> None:
    """Refresh every Shares screen on the stack."""
    for screen in app.screen_stack:
        if isinstance(screen, SharesScreen) and screen.is_mounted:
            screen.downloaded()


_WATCHING: weakref.WeakSet[App[Any]] = weakref.WeakSet()  # apps whose watcher runs


def start_share_events(app: App[Any]) -> None:
    """Start (once per app) the worker that announces downloads as notifications."""
    if app in _WATCHING:
        return
    _WATCHING.add(app)
    app.run_worker(_watch_events(app), group="share-events", exclusive=True,
                   exit_on_error=False, name="share-events")


async def _latest_event_id(client: ShareClient) -> int:
    """Skip the events that happened before this session (500 per answer at most)."""
    since = 0
    while True:
        batch = await client.events(since, wait=0)
        if not batch:
            return since
        since = max(since, *(int(e["id"]) for e in batch))
        if len(batch) < 500:
            return since


async def _watch_events(app: App[Any]) -> None:
    since: int | None = None
    shares: dict[str, ShareJSON | None] = {}  # what each announced share is (None: unknown)
    while True:
        try:
            client = ShareClient()
            if since is None:
                since = await _latest_event_id(client)
            for event in await client.events(since, wait=EVENT_WAIT):
                since = max(since, int(event["id"]))
                if event.get("event") == "share.downloaded":
                    await _announce(app, client, event, shares)
        except ShareError:
            await asyncio.sleep(RETRY_SECONDS)  # no service (yet): look again later
        except Exception:  # a malformed answer must not end the notices for the session
            log.exception("share events: unexpected answer")
            await asyncio.sleep(RETRY_SECONDS)


def recipient_label(recipient: dict[str, Any]) -> str:
    """A recipient as the Shares screen shows it: the address, or ``(link)``."""
    return str(recipient.get("email") or "(link)")


async def _announce(
    app: App[Any], client: ShareClient, event: EventJSON, shares: dict[str, ShareJSON | None]
) -> None:
    """``alice@nhs.net downloaded scan.zip``: the recipient named as on the Shares screen
    (the service's event names a recipient without an address by its internal id)."""
    fields = event.get("fields") or {}
    share_id = str(fields.get("share", ""))
    who = str(fields.get("recipient") or "")

    def known(share: ShareJSON | None) -> dict[str, str]:
        if share is None:
            return {}
        return {str(r.get("id")): recipient_label(dict(r)) for r in share.get("recipients", [])}

    if share_id and (share_id not in shares or (who and who not in known(shares[share_id])
                                                and "@" not in who)):
        try:  # (again when a recipient was added since)
            shares[share_id] = await client.show(share_id)
        except FerryError:
            shares.setdefault(share_id, None)
    share = shares.get(share_id)
    name = (str(share.get("name") or "") if share is not None else "") or f"share {share_id}"
    label = known(share).get(who) or (who if "@" in who else "a recipient")
    if label == "(link)":
        label = "someone with the anonymous link (link)"
    app.notify(f"{label} downloaded {name}", title="Download", timeout=10)
    refresh_shares(app)
