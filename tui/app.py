"""The Ferry terminal app: the App object only (screens, dialogs and widgets live elsewhere).

Owns what lives as long as the session: the :class:`backend.session.Session` (site store,
vault unlocked after one passphrase prompt, connecting: the same wiring the ``ferry`` command
uses) with this face's :class:`DialogPrompter`, the transfer engine (its tasks belong to the
App so they survive screen changes; it gets the session's at-rest key provider), themes, the
user keymap, and :meth:`FerryApp.connect_site`, which shows connection errors.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import asyncssh
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType

from backend.agent.client import disabled as agent_disabled
from backend.agent.remote import AgentEngine
from backend.errors import ConfigError, FerryError, HostKeyChangedError, VaultError
from backend.hostkeys import PresentedKey, TrustDecision
from backend.names import display_name
from backend.session import Session
from backend.sites.model import Site
from backend.sites.store import SiteStore
from backend.vault import MIN_PASSPHRASE, Vault
from tui.commands import FerryCommands, ThemeCommands
from tui.dialogs import ConfirmDialog, HostKeyDialog, SecretDialog, ask
from tui.key_order import KeyOrder
from tui.keymap_check import binding_table, check_keymap
from tui.messages import ShareCreated
from tui.settings import DEFAULT_THEME, Settings, load_settings, save_theme
from tui.themes import load_builtin_themes, load_user_themes

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.theme import Theme

    from backend.transfers import JobStatus, TransferEngine
    from tui.services import FerryServices

log = logging.getLogger("ferry.tui")


class FerryApp(App[None]):
    """Ferry. ``FerryApp()`` opens on the Sites screen; ``start_site`` opens its browser."""

    TITLE = "Ferry"
    CSS_PATH = "app.tcss"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {FerryCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help", id="ferry.help"),
        Binding(
            "ctrl+p", "command_palette", "Palette", id="ferry.palette", priority=True, show=False
        ),
        Binding("f9", "change_theme", "Theme", id="ferry.theme"),
        Binding("f10,q", "quit", "Quit", id="ferry.quit"),
    ]

    def __init__(self, *, start_site: str | None = None, demo: object | None = None,
                 use_agent: bool | None = None) -> None:
        """``use_agent``: run transfers in the Ferry agent (docs/agent.md), so they outlive
        this window; None: unless ``FERRY_NO_AGENT`` says otherwise (``ferry --no-agent``)."""
        super().__init__()
        self.start_site = start_site
        self.demo = demo
        self.use_agent = not agent_disabled() if use_agent is None else use_agent
        self.session = Session(DialogPrompter(self))
        self.store: SiteStore = self.session.store
        self.engine: TransferEngine | AgentEngine | None = None
        self.exit_note: str | None = None
        """What to print on the terminal after the app exits (transfers left to the agent)."""
        self.left_running: list[JobStatus] = []
        """The agent's queued and running jobs when this app quit (``ferry demo`` serves on
        until those of its sites end)."""
        self.settings = Settings()
        self._settings_ok = True
        self._shown_theme = DEFAULT_THEME
        self.exiting = False
        self._key_order = KeyOrder(self, super().on_event)

    async def on_event(self, event: events.Event) -> None:
        """Keys from the terminal go through :class:`KeyOrder`: each is handled only after the
        focus changes and dialogs the one before it caused (tui/key_order.py)."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            await self._key_order.key(event)
            return
        await super().on_event(event)

    def exit(self, *args: Any, **kwargs: Any) -> None:
        self.exiting = True
        super().exit(*args, **kwargs)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Notifications never interpret markup: their text is often a server's or a file's
        (``[bold]x[red].txt`` must show literally); control characters are replaced."""
        del markup
        super().notify(
            display_name(message), title=display_name(title), severity=severity,
            timeout=timeout, markup=False,
        )

    # ------------------------------------------------------------------ lifecycle

    def compose(self) -> ComposeResult:
        yield from ()

    async def on_mount(self) -> None:
        self._load_themes_and_settings()
        from tui.screens.sites import SitesScreen

        await self.push_screen(SitesScreen())
        await self._start_engine()
        from tui.screens.shares import start_share_events

        start_share_events(self)  # download notices from a running share service
        if self.start_site:
            self.open_browser(self.start_site)

    def on_share_created(self, message: ShareCreated) -> None:
        """A share was made in the Share… dialog: its links now appear on the Shares screen,
        and its downloads are announced."""
        from tui.screens.shares import refresh_shares, start_share_events

        start_share_events(self)
        refresh_shares(self)

    async def on_unmount(self) -> None:
        self._key_order.stop()
        await self._stop_engine()

    def _load_themes_and_settings(self) -> None:
        for theme in load_builtin_themes():
            self.register_theme(theme)
        problems: list[str] = []
        user_themes, theme_problems = load_user_themes()
        for theme in user_themes:
            self.register_theme(theme)
        problems += theme_problems
        try:
            self.settings = load_settings()
        except ConfigError as exc:
            self._settings_ok = False
            problems.append(exc.message)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            problems.append(
                f"theme {self.settings.theme!r} is not available; using {DEFAULT_THEME}"
            )
            self.theme = DEFAULT_THEME
        if self.settings.keymap:
            app_class, classes = binding_table(self)
            keymap, keymap_problems = check_keymap(self.settings.keymap, app_class, classes)
            problems += keymap_problems
            self.set_keymap(keymap)
        self._shown_theme = self.theme  # a fallback never overwrites the user's choice
        if problems:
            self.notify(
                "; ".join(problems), title="Settings", severity="warning", timeout=12
            )
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        if not self._settings_ok or theme.name == self._shown_theme:
            return
        self._shown_theme = self.settings.theme = theme.name
        try:
            save_theme(theme.name)
        except (ConfigError, OSError) as exc:
            self.notify(f"could not save the theme: {exc}", severity="warning")

    async def _start_engine(self) -> None:
        if self.use_agent:
            remote = AgentEngine(DialogPrompter(self), client_name="tui")
            remote.on_notice(lambda text, severity: self.notify(
                text, title="Ferry agent", severity=_severity(severity), timeout=10))
            try:
                await remote.start()
            except FerryError as exc:
                self.notify(f"{exc.message}; transfers run in this window instead and stop "
                            "when Ferry quits", title="Ferry agent", severity="warning",
                            timeout=12)
            else:
                self.engine = remote
                self.session.on_unlocked = self._unlock_agent
                return
        # one wiring (backend/session.py): this connector and the at-rest key provider
        self.engine = self.session.engine(connector=self.connect_site)
        try:
            await self.engine.start()
        except FerryError as exc:
            self.notify(str(exc), title="Transfers", severity="error")
            self.engine = None

    def _unlock_agent(self, passphrase: str) -> None:
        """The vault passphrase typed here unlocks the agent's vault too (docs/agent.md)."""
        engine = self.engine
        if not isinstance(engine, AgentEngine):
            return

        async def unlock() -> None:
            try:
                await engine.unlock(passphrase)
            except FerryError as exc:
                log.warning("could not unlock the agent's vault: %s", exc)

        self.run_worker(unlock(), group="agent-unlock", exclusive=False)

    async def _stop_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.stop()

    # ------------------------------------------------------------------ navigation

    def open_browser(self, site_name: str | None) -> None:
        """Open the dual-pane browser, on ``site_name`` (or local only)."""
        from tui.screens.browser import BrowserScreen  # part B's screen, imported lazily

        local_dir = getattr(self.demo, "local_dir", None)  # ferry demo: its own workspace
        self.push_screen(BrowserScreen(site_name, local_dir=str(local_dir) if local_dir else None))

    def action_change_theme(self) -> None:
        """F9: the themes, the current one marked (tui/commands.py ``ThemeCommands``)."""
        from textual.command import CommandPalette

        self.push_screen(CommandPalette(providers=[ThemeCommands],
                                        placeholder="Search for themes…"))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(type(self.screen)))

    def running_transfers(self) -> int:
        """How many transfers this session's engine has queued or running (0 without one)."""
        if self.engine is None:
            return 0
        try:
            jobs = self.engine.jobs()
        except FerryError:
            return 0
        return sum(1 for job in jobs if job.state in ("queued", "running"))

    async def action_quit(self) -> None:
        """Quit. Transfers in the agent go on (and the terminal is told how to follow them);
        in-process ones stop, so ask first (Cancel focused) while any is queued or running."""
        if isinstance(self.engine, AgentEngine):
            self.left_running = self.engine.running()
            if self.left_running:
                self.exit_note = (
                    f"{len(self.left_running)} transfer(s) continue in the background in the "
                    f"Ferry agent (pid {self.engine.pid}) — follow them with 'ferry queue watch'")
            self.exit()
            return
        running = self.running_transfers()
        if not running:
            self.exit()
            return
        dialog = ConfirmDialog(
            "Quit Ferry?",
            [
                f"{running} transfer(s) are still running or queued.",
                "Quitting stops them; they resume from where they stopped "
                "the next time Ferry starts.",
            ],
            danger=True,
            confirm_label="Quit",
        )
        # A callback, not ``await ask()``: the App's own handler must never wait on a dialog
        # (keys reach the dialog through the App's message queue).
        self.push_screen(dialog, callback=lambda yes: self.exit() if yes else None)

    # ------------------------------------------------------------------ connecting

    @property
    def vault(self) -> Vault | None:
        """The vault if this session unlocked it already (never prompts)."""
        return self.session.unlocked_vault

    async def connect_site(self, name: str) -> tuple[Site, asyncssh.SSHClientConnection]:
        """Connect to a saved site through the one wiring (backend/session.py), asking in
        dialogs for what is needed (:class:`DialogPrompter`).

        Any :class:`FerryError` is shown as a one-line notification (with its fix) and
        re-raised. Call it from a worker or a screen's handler, not from an App-level handler
        (the dialogs need the App's message loop).
        """
        try:
            return await self.session.connect(name)
        except FerryError as exc:
            self.notify(str(exc), title="Connect", severity="error", timeout=10)
            raise

    async def unlock_vault(self, create: bool = False) -> Vault | None:
        """The session's vault: from FERRY_VAULT_PASSPHRASE_FILE or a masked dialog, once.

        Returns ``None`` when no vault exists and ``create`` is False. With ``create`` a new
        vault is made after the passphrase is typed twice. Raises VaultError / CancelledByUser.
        """
        return await self.session.vault(create=create)


class DialogPrompter:
    """The TUI's answers to :class:`backend.session.Prompter`: masked and host-key dialogs."""

    def __init__(self, app: App[None]) -> None:
        self.app = app

    async def host_key(self, site_name: str, key: PresentedKey) -> TrustDecision | None:
        return await ask(self.app, HostKeyDialog(site_name, key))

    async def host_key_changed(self, site_name: str, error: HostKeyChangedError) -> None:
        shown = PresentedKey(key_type=error.key_type, fingerprint=error.new_fingerprint, line="")
        await ask(self.app, HostKeyDialog(site_name, shown, changed=True,
                                          old_fingerprints=error.old_fingerprints))

    async def vault_passphrase(self, path: Path, *, create: bool) -> str | None:
        if not create:
            return await ask(self.app, SecretDialog("Vault master passphrase"))
        first = await ask(
            self.app,
            SecretDialog(
                f"New vault master passphrase (at least {MIN_PASSPHRASE} characters)",
                validator=_long_enough,
            ),
        )
        if first is None:
            return None
        second = await ask(self.app, SecretDialog("New vault master passphrase (again)"))
        if second != first:
            raise VaultError("the two passphrases differ; nothing was saved")
        return first

    async def secret(self, site: Site, what: str) -> str | None:
        return await ask(self.app, SecretDialog(f"{what.capitalize()} for {site.name} "
                                                "(not stored)"))


def _severity(name: str) -> SeverityLevel:
    return "error" if name == "error" else "warning" if name == "warning" else "information"


def _long_enough(value: str) -> str | None:
    if len(value) < MIN_PASSPHRASE:
        return f"at least {MIN_PASSPHRASE} characters"
    return None


if TYPE_CHECKING:
    _services: FerryServices = FerryApp()  # FerryApp is what tui/services.py promises
