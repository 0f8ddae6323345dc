"""The share service from its command-line options: what ``ferry serve`` (tui/cli/share_cmd.py)
and the agent (backend/agent/sharehost.py) both start — the storage the options and the service
file name (backend/shares/backends.py), opened, and the service listening on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import UsageError


@dataclass
class ServeSpec:
    """``ferry serve``'s options (none of them a secret)."""

    listen: str = "127.0.0.1:8750"
    public_url: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_self_signed: bool = False
    trusted_proxies: list[str] = field(default_factory=list)
    proxy_header: str = "x-forwarded-for"
    trust_proxy: bool = False
    database: str | None = None
    blob_store: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], *, absolute_paths: bool = True) -> ServeSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        spec = cls(**known)
        for name in ("tls_cert", "tls_key"):
            value = getattr(spec, name)
            if absolute_paths and value is not None and not Path(value).is_absolute():
                raise UsageError(f"the agent needs an absolute --{name.replace('_', '-')} path "
                                 "(it runs in /)")
        return spec


async def start_service(spec: ServeSpec) -> tuple[Any, str, Any]:
    """``(handle, url, backends)`` of the started service (``backends``: the scaled-out
    store and blobs to close after ``stop_share_service``, or None); nothing is left open
    when it cannot start."""
    from backend.shares.backends import load_storage
    from backend.shares.server import open_service, start_share_service

    storage = load_storage(spec.database, spec.blob_store)
    service, backends = await asyncio.to_thread(open_service, storage)
    try:
        handle, url = await start_share_service(
            spec.listen, public_url=spec.public_url, tls_cert=spec.tls_cert,
            tls_key=spec.tls_key, tls_self_signed=spec.tls_self_signed,
            trust_proxy=spec.trust_proxy, trusted_proxies=spec.trusted_proxies,
            proxy_header=spec.proxy_header, service=service)
    except BaseException:
        if backends is not None:
            backends.close()
        raise
    return handle, url, backends
