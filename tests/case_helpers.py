"""Helpers for the case workflow tests: one fixture over both real servers, file snapshots."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.sites.model import Site
from backend.sites.store import SiteStore


@dataclass
class CaseServer:
    """A real SFTP server and the local folder it serves a site from."""

    kind: str
    server: object  # InProcessServer | SshdServer
    base: Path  # local folder that holds the site folders

    def local(self, sub: str) -> Path:
        path = self.base / sub
        path.mkdir(parents=True, exist_ok=True)
        return path

    def site(self, name: str, layout: str, sub: str, *, register: bool = True,
             **changes: object) -> Site:
        self.local(sub)
        remote_dir = f"/{sub}" if self.kind == "inprocess" else str(self.base / sub)
        site = self.server.site(name, layout=layout, remote_dir=remote_dir,  # type: ignore[attr-defined]
                                **changes)
        if register:
            store = SiteStore()
            if store.exists(name):
                store.update(name, **{k: getattr(site, k) for k in
                                      ("host", "port", "remote_dir", "layout", "host_keys")})
            else:
                store.add(site)
        return site


@pytest.fixture(params=["inprocess", "sshd"])
def case_server(request: pytest.FixtureRequest, tmp_path: Path, ferry_home: Path) -> CaseServer:
    if request.param == "inprocess":
        server = request.getfixturevalue("sftp_server")
        return CaseServer("inprocess", server, server.root)
    server = request.getfixturevalue("sshd")
    base = tmp_path / "served"
    base.mkdir()
    return CaseServer("sshd", server, base)


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> SHA-256 of every regular file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }
