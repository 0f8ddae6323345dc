"""Helpers shared by the transfer tests: connectors to real test servers, data, hashing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import asyncssh

from backend import ssh
from backend.audit import AuditLog
from backend.sites.model import Site
from backend.transfers import Journal, RetryPolicy, TransferEngine

FAST_RETRY = RetryPolicy(attempts=6, first_delay=0.05, max_delay=0.3)


def connector_for(make_site: Callable[[], Site], counter: list[int] | None = None):
    async def connect(name: str) -> tuple[Site, asyncssh.SSHClientConnection]:
        site = make_site()
        if counter is not None:
            counter.append(1)
        return site, await ssh.connect(site)

    return connect


def make_engine(make_site: Callable[[], Site], **kwargs: object) -> TransferEngine:
    kwargs.setdefault("retry", FAST_RETRY)
    return TransferEngine(
        connector_for(make_site), journal=Journal(), audit=AuditLog(), **kwargs  # type: ignore[arg-type]
    )


def write_random(path: Path, size: int, seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = bytes(b ^ (i * 131 & 0xFF) for i, b in enumerate(data[: min(size, 4096)])) + data[
        4096:size
    ]
    path.write_bytes(data[:size])
    return hashlib.sha256(data[:size]).hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every regular file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = sha256_of(p)
    return out
