"""What a file pane browses: the local disk or one remote site, behind one small interface.

``LocalSource`` runs :mod:`backend.localfs` in threads; ``RemoteSource`` wraps an open SSH
connection and its SFTP client with :mod:`backend.remote`. Both return the same
``RemoteEntry``/``Listing`` shapes so the pane never cares which it shows.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import contextlib
import os
import posixpath
from dataclasses import dataclass, field

import asyncssh

from backend import checksum, localfs, remote
from backend.cases.layout import CaseMarker, case_markers
from backend.remote import Listing, RemoteEntry, WalkItem
from backend.sites.model import Site
from backend.sshtuning import start_sftp


class Source(abc.ABC):
    """The operations a pane needs. Paths are strings in the source's own convention."""

    label: str = ""
    is_remote: bool = False
    home: str = "/"

    @abc.abstractmethod
    def join(self, parent: str, name: str) -> str:
        """Implemented by each source."""

    @abc.abstractmethod
    def parent(self, path: str) -> str:
        """Implemented by each source."""

    @abc.abstractmethod
    async def list(self, path: str) -> Listing:
        """Implemented by each source."""

    async def markers(
        self, path: str, entries: builtins.list[RemoteEntry]
    ) -> dict[str, CaseMarker]:
        return {}

    @abc.abstractmethod
    async def mkdir(self, parent: str, name: str) -> str:
        """Implemented by each source."""

    @abc.abstractmethod
    async def rename(self, parent: str, old: str, new: str) -> str:
        """Implemented by each source."""

    @abc.abstractmethod
    async def plan_delete(self, path: str) -> builtins.list[WalkItem]:
        """Implemented by each source."""

    @abc.abstractmethod
    async def delete(self, path: str) -> int:
        """Implemented by each source."""

    @abc.abstractmethod
    async def read_head(self, path: str) -> tuple[bytes, bool]:
        """Implemented by each source."""

    @abc.abstractmethod
    async def stat(self, path: str) -> RemoteEntry:
        """Implemented by each source."""

    @abc.abstractmethod
    async def sha256(self, path: str) -> str:
        """Implemented by each source."""

    async def close(self) -> None:
        return None


class LocalSource(Source):
    label = "local"
    is_remote = False

    def __init__(self, home: str | None = None) -> None:
        self.home = os.path.abspath(home or localfs.home())

    def join(self, parent: str, name: str) -> str:
        return os.path.join(parent, name)

    def parent(self, path: str) -> str:
        return os.path.dirname(path.rstrip("/")) or "/"

    async def list(self, path: str) -> Listing:
        return await asyncio.to_thread(localfs.list_dir, path)

    async def mkdir(self, parent: str, name: str) -> str:
        return await asyncio.to_thread(localfs.mkdir, parent, name)

    async def rename(self, parent: str, old: str, new: str) -> str:
        return await asyncio.to_thread(localfs.rename, parent, old, new)

    async def plan_delete(self, path: str) -> builtins.list[WalkItem]:
        return await asyncio.to_thread(localfs.plan_delete, path)

    async def delete(self, path: str) -> int:
        return await asyncio.to_thread(localfs.delete, path)

    async def read_head(self, path: str) -> tuple[bytes, bool]:
        return await asyncio.to_thread(localfs.read_head, path)

    async def stat(self, path: str) -> RemoteEntry:
        return await asyncio.to_thread(localfs.stat_path, path)

    async def sha256(self, path: str) -> str:
        return await checksum.local_sha256(path)


@dataclass
class RemoteSource(Source):
    site: Site
    conn: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    home: str = "/"
    is_remote: bool = True
    _closed: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:  # type: ignore[override]  # derived here, a field on the base
        return self.site.name

    @classmethod
    async def open(cls, site: Site, conn: asyncssh.SSHClientConnection) -> RemoteSource:
        """Start SFTP on ``conn`` and find the site's initial folder (its remote_dir)."""
        from backend.errors import ConnectError
        from backend.names import display_name

        try:
            sftp = await start_sftp(conn)
        except asyncssh.Error as exc:
            conn.close()
            raise ConnectError(
                f"{site.name}: the server refused the SFTP subsystem: {display_name(str(exc))}"
            ) from None
        with remote.sftp_errors(site.remote_dir or "."):
            home = await sftp.realpath(site.remote_dir or ".")
        return cls(site=site, conn=conn, sftp=sftp, home=home)

    def join(self, parent: str, name: str) -> str:
        return posixpath.join(parent, name)

    def parent(self, path: str) -> str:
        return posixpath.dirname(path.rstrip("/")) or "/"

    async def list(self, path: str) -> Listing:
        return await remote.list_dir(self.sftp, path)

    async def markers(
        self, path: str, entries: builtins.list[RemoteEntry]
    ) -> dict[str, CaseMarker]:
        if self.site.layout == "generic":
            return {}

        async def names(folder: str) -> set[str]:
            listing = await remote.list_dir(self.sftp, folder, links=False)
            return {e.name for e in listing.entries if e.kind == "dir"}

        return await case_markers(
            self.site.layout, self.home, path, entries, names, self.site.layout_folders
        )

    async def mkdir(self, parent: str, name: str) -> str:
        return await remote.mkdir(self.sftp, parent, name)

    async def rename(self, parent: str, old: str, new: str) -> str:
        return await remote.rename(self.sftp, parent, old, new)

    async def plan_delete(self, path: str) -> builtins.list[WalkItem]:
        return await remote.plan_delete(self.sftp, path)

    async def delete(self, path: str) -> int:
        return await remote.delete(self.sftp, path)

    async def read_head(self, path: str) -> tuple[bytes, bool]:
        return await remote.read_head(self.sftp, path)

    async def stat(self, path: str) -> RemoteEntry:
        return await remote.stat_path(self.sftp, path)

    async def sha256(self, path: str) -> str:
        return await checksum.remote_sha256(
            self.conn, self.sftp, path, allow_exec=self.site.allow_exec
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.sftp.exit()
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()
