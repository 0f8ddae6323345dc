"""What the screens, widgets and dialogs may use of the running Ferry app, as a type.

Textual types ``widget.app`` as a plain ``App[object]``; :class:`tui.app.FerryApp` adds the
session's site store, vault, transfer engine and connecting. The layers below the app must not
import ``tui.app`` (the import contracts in pyproject.toml), so they see it through this
Protocol: ``ferry(self.app).store``. FerryApp satisfies it structurally (mypy checks that in
tui/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    import asyncssh
    from textual.app import App

    from backend.agent.remote import AgentEngine
    from backend.session import Session
    from backend.sites.model import Site
    from backend.sites.store import SiteStore
    from backend.transfers import TransferEngine
    from backend.vault import Vault


class FerryServices(Protocol):
    """The session-long services of the Ferry app (tui/app.py documents each)."""

    session: Session
    store: SiteStore
    engine: TransferEngine | AgentEngine | None
    """The agent's engine when attached to it (docs/agent.md), else this process's; None
    until it started, or when it could not start."""

    @property
    def vault(self) -> Vault | None:
        """The vault if this session unlocked it already (never prompts)."""
        ...

    async def connect_site(self, name: str) -> tuple[Site, asyncssh.SSHClientConnection]: ...

    async def unlock_vault(self, create: bool = False) -> Vault | None: ...

    def open_browser(self, site_name: str | None) -> None: ...


def ferry(app: App[object]) -> FerryServices:
    """``app`` as the Ferry app it is at run time (every screen runs inside FerryApp)."""
    return cast("FerryServices", app)
