"""``ferry demo``'s engine: the demo SFTP server in a background thread, and its sites.

Next to the SFTP server it runs Ferry's share service (127.0.0.1, a free port, in the same
loop) so sharing works out of the box, and a simulated provider that produces results for
studies and cases sent to it a few seconds later.

The server's host key and the demo client key persist under ``$FERRY_HOME/demo`` so the pinned
key stays valid between runs; the served files are a fresh temporary folder each run. Two sites
are registered (or refreshed with the new port): ``demo`` (inbox-outbox, ``/idt``) and
``demo-ai`` (study-io, ``/ai``), both with the host key pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncssh

from backend.demo.samples import populate, populate_local
from backend.demo.server import RunningServer, start_sftp_server
from backend.errors import ConfigError
from backend.fsutil import atomic_write, ensure_private_dir
from backend.hostkeys import key_line
from backend.paths import ferry_home
from backend.sites.model import Site
from backend.sites.store import SiteStore

if TYPE_CHECKING:
    from backend.shares.server import ServiceHandle

T = TypeVar("T")

DEMO_USER = "demo"
# per demo site: the Site fields it sets (as ``SiteStore.update(name, **changes)`` takes them)
DEMO_SITES: dict[str, dict[str, Any]] = {
    "demo": {"layout": "inbox-outbox", "remote_dir": "/idt"},
    # require_deidentified: so the demo shows the de-identification check (docs/cases.md)
    "demo-ai": {"layout": "study-io", "remote_dir": "/ai", "require_deidentified": True},
}


def _load_or_create_key(path: Path) -> asyncssh.SSHKey:
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="ferry-demo")
    atomic_write(path, key.export_private_key("openssh"), mode=0o600)
    return key


@dataclass
class DemoServer:
    """The demo SFTP server running on its own event loop in a daemon thread."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    client_key_path: Path = field(default_factory=Path)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _server: RunningServer | None = field(default=None, repr=False)
    _owns_root: bool = False
    share_url: str | None = None
    _share: ServiceHandle | None = field(default=None, repr=False)
    _stop_provider: Callable[[], None] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        *,
        root: Path | None = None,
        large_file_mib: int = 64,
        share_service: bool = True,
        provider: bool = True,
    ) -> DemoServer:
        state = ensure_private_dir(ferry_home() / "demo")
        host_key = _load_or_create_key(state / "host_key")
        client_key_path = state / "id_demo"
        client_key = _load_or_create_key(client_key_path)
        owns = root is None
        root = Path(root or tempfile.mkdtemp(prefix="ferry-demo-"))
        populate(root, large_file_mib=large_file_mib)
        demo = cls(root=root, client_key_path=client_key_path, _owns_root=owns)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            demo._loop = loop
            try:
                demo._server = loop.run_until_complete(
                    start_sftp_server(root, host_key=host_key, authorized_keys=[client_key])
                )
                demo.port = demo._server.port
                if share_service:
                    from backend.shares.server import start_share_service

                    demo._share, demo.share_url = loop.run_until_complete(
                        start_share_service("127.0.0.1:0")
                    )
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            with contextlib.suppress(Exception):
                if demo._share is not None:
                    from backend.shares.server import stop_share_service

                    loop.run_until_complete(stop_share_service(demo._share))
                demo._server.close()
                loop.run_until_complete(demo._server.wait_closed())
            loop.close()

        demo._thread = threading.Thread(target=run, name="ferry-demo-sftp", daemon=True)
        demo._thread.start()
        ready.wait(30)
        if errors:
            raise ConfigError(f"the demo server could not start: {errors[0]}")
        populate_local(demo.local_dir)
        demo.register_sites(host_key)
        if provider:
            from backend.demo.provider import start_provider

            demo._stop_provider = start_provider(root)
        return demo

    @property
    def local_dir(self) -> Path:
        """The demo's local workspace: where downloads land and a sample study waits to be sent."""
        return ferry_home() / "demo" / "local"

    def register_sites(self, host_key: asyncssh.SSHKey, store: SiteStore | None = None) -> None:
        store = store or SiteStore()
        for name, extra in DEMO_SITES.items():
            fields: dict[str, Any] = {
                "host": self.host,
                "port": self.port,
                "user": DEMO_USER,
                "auth": "key",
                "key_file": str(self.client_key_path),
                "host_keys": [key_line(host_key)],
                **extra,
            }
            if store.exists(name):
                store.update(name, **fields)
            else:
                store.add(Site(name=name, **fields))

    def call(self, coro_factory: Callable[[], Coroutine[object, object, T]]) -> Future[T]:
        """Run a coroutine on the demo server's loop (for simulated providers)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop)

    def stop(self) -> None:
        if self._stop_provider is not None:
            self._stop_provider()
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if self._owns_root and os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
