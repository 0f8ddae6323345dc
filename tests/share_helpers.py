"""Helpers for the share service tests (tests/test_share_*.py): the embedded service on a free
loopback port, a share of random bytes, and HTTP clients bound to a chosen 127.0.0.x address
(the concurrency tests come from several)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import ServiceHandle, start_share_service, stop_share_service

PASSWORD = "correct horse battery"


@pytest.fixture
async def svc(ferry_home: Path) -> AsyncIterator[ServiceHandle]:
    """The embedded share service of this test's FERRY_HOME on 127.0.0.1 (a free port)."""
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    try:
        yield handle
    finally:
        await stop_share_service(handle)


async def share_random(tmp_path: Path, size: int, *, client: Any = None,
                       name: str = "scan.bin", **options: object) -> tuple[dict, bytes]:
    """Share ``size`` random bytes (password :data:`PASSWORD` unless given); (created, data)."""
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    options.setdefault("name", path.name)
    options.setdefault("password", PASSWORD)
    created = await (client or ShareClient()).create(local_file_source(path), size=size,
                                                     **options)
    return created, data


def session_from(address: str = "127.0.0.1", total: float = 120) -> aiohttp.ClientSession:
    """An HTTP client whose connections come from ``address`` (one connection a request)."""
    conn = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=total))
