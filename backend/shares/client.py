"""The admin API client used by the CLI and the TUI to talk to a running share service.

``ShareClient()`` finds the service from ``$FERRY_HOME/state/share-service.json`` (written by
``ferry serve``) and the bearer token from ``$FERRY_HOME/share-admin.token``; both can be given
explicitly. All methods are async and raise :class:`backend.errors.ShareError` with the
service's one-line message. ``local_file_source`` and ``sftp_source`` turn a local file or a
remote SFTP file into the byte-chunk iterator ``create`` uploads (no plaintext on local disk
for SFTP sources: chunks go straight from the SFTP session into the HTTP body).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict, cast

import aiohttp

from backend.errors import ShareError

CHUNK = 512 * 1024


# The admin API's answers as JSON (backend/shares/model.py ``public()``, service.py, web.py):
# times are ISO 8601 strings. The CLI prints them as they are (``--json``), the TUI shows them.
class RecipientJSON(TypedDict):
    id: str
    email: str | None
    downloads: int
    last_download_at: str | None
    failed_attempts: int


class ShareJSON(TypedDict):
    id: str
    name: str
    size: int
    sha256: str
    created_at: str
    expires_at: str
    max_downloads: int
    sender: str
    message: str
    notify: bool
    revoked_at: str | None
    purged_at: str | None
    purge_reason: str | None
    broken_at: str | None
    broken_reason: str | None
    recipients: list[RecipientJSON]
    password_protected: bool
    status: str
    downloads: int


class LinkJSON(TypedDict):
    """One recipient's link (``email`` None: anyone with the link and the password)."""

    recipient_id: str
    email: str | None
    url: str


class CreatedJSON(TypedDict):
    share: ShareJSON
    links: list[LinkJSON]
    password: str | None


class EventJSON(TypedDict):
    """A share event: an audit row ``share.*`` (backend/audit.py ``Entry.as_dict``)."""

    id: int
    ts: str
    event: str
    actor: str
    fields: dict[str, object]
    prev_hash: str
    hash: str


def local_file_source(path: Path, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Read a local file in chunks (reads run in a thread so the loop stays free)."""

    async def gen() -> AsyncIterator[bytes]:
        fh = await asyncio.to_thread(open, path, "rb")
        try:
            while True:
                data = await asyncio.to_thread(fh.read, chunk)
                if not data:
                    return
                yield data
        finally:
            fh.close()

    return gen()


async def sftp_source(sftp: Any, path: str, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """Stream a remote file from an open asyncssh SFTP client, chunk by chunk."""
    async with sftp.open(path, "rb") as fh:
        while True:
            data = await fh.read(chunk)
            if not data:
                return
            yield data


class ShareClient:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        cafile: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        if url is None:
            url, info_cafile = _read_info()
            cafile = cafile or info_cafile
        if token is None:
            token = _read_token()
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._ssl: ssl.SSLContext | bool = True
        if cafile:
            ctx = ssl.create_default_context()
            ctx.load_verify_locations(cafile)
            self._ssl = ctx
        self._timeout = timeout

    def _session(self, total: float | None = None) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=10, sock_read=self._timeout)
        return aiohttp.ClientSession(headers=self._headers, timeout=timeout)

    async def _call(self, method: str, path: str, *, json_body: Any = None,
                    params: dict[str, str] | None = None) -> Any:
        try:
            async with self._session() as session, session.request(
                method, self.url + path, json=json_body, params=params, ssl=self._ssl
            ) as resp:
                return await _result(resp)
        except aiohttp.ClientError as exc:
            raise ShareError(
                f"cannot reach the share service at {self.url}: {exc}",
                hint="is 'ferry serve' running?",
            ) from None

    # -- API --------------------------------------------------------------------------------
    async def health(self) -> dict[str, object]:
        return cast("dict[str, object]", await self._call("GET", "/api/health"))

    async def create(self, source: AsyncIterator[bytes], *, send_links: bool = False,
                     **options: Any) -> CreatedJSON:
        """Upload ``source`` as a new share. ``options`` as for ``ShareService.validate``
        (``expires`` as a duration string such as ``"3d"``). Caps are checked first."""
        await self._call("POST", "/api/shares/validate", json_body=options)
        header = base64.urlsafe_b64encode(
            json.dumps({**options, "send_links": send_links}).encode()
        ).decode().rstrip("=")
        try:
            async with self._session() as session, session.post(
                self.url + "/api/shares", data=source, ssl=self._ssl,
                headers={"Ferry-Share-Options": header,
                         "Content-Type": "application/octet-stream"},
            ) as resp:
                return cast(CreatedJSON, await _result(resp))
        except aiohttp.ClientError as exc:
            raise ShareError(f"upload to the share service failed: {exc}") from None

    async def list(self) -> builtins.list[ShareJSON]:
        return cast("builtins.list[ShareJSON]", await self._call("GET", "/api/shares"))

    async def show(self, share_id: str) -> ShareJSON:
        return cast(ShareJSON, await self._call("GET", f"/api/shares/{_id(share_id)}"))

    async def revoke(self, share_id: str, actor: str = "") -> ShareJSON:
        answer = await self._call("POST", f"/api/shares/{_id(share_id)}/revoke",
                                  json_body={"actor": actor})
        return cast(ShareJSON, answer)

    async def extend(self, share_id: str, expires: str, actor: str = "") -> ShareJSON:
        answer = await self._call("POST", f"/api/shares/{_id(share_id)}/extend",
                                  json_body={"expires": expires, "actor": actor})
        return cast(ShareJSON, answer)

    async def add_recipient(self, share_id: str, email: str, actor: str = "") -> LinkJSON:
        answer = await self._call("POST", f"/api/shares/{_id(share_id)}/recipients",
                                  json_body={"email": email, "actor": actor})
        return cast(LinkJSON, answer)

    async def purge(self) -> builtins.list[str]:
        return cast("builtins.list[str]", (await self._call("POST", "/api/purge"))["purged"])

    async def events(self, since: int = 0, wait: float = 0) -> builtins.list[EventJSON]:
        answer = await self._call("GET", "/api/events",
                                  params={"since": str(since), "wait": str(wait)})
        return cast("builtins.list[EventJSON]", answer)

    async def watch(self, since: int = 0) -> AsyncIterator[EventJSON]:
        """Share events as they happen (downloads, failed passwords, purges...), forever."""
        while True:
            for event in await self.events(since, wait=30):
                since = max(since, int(event["id"]))
                yield event


def _id(share_id: str) -> str:
    if not share_id.isalnum():
        raise ShareError(f"invalid share id {share_id!r}", hint="see 'ferry share list'")
    return share_id


async def _result(resp: aiohttp.ClientResponse) -> Any:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        data = None
    if resp.status >= 400:
        if isinstance(data, dict) and "error" in data:
            raise ShareError(str(data["error"]), hint=data.get("hint"))
        raise ShareError(f"share service answered HTTP {resp.status}")
    return data


def _read_info() -> tuple[str, str | None]:
    from backend.shares.server import service_info_file

    path = service_info_file()
    try:
        data = json.loads(path.read_text())
        return str(data["url"]), data.get("cafile")
    except (OSError, ValueError, KeyError):
        raise ShareError(
            "the share service is not running", hint="start it with 'ferry serve'"
        ) from None


def _read_token() -> str:
    from backend.shares.server import admin_token_file

    try:
        return admin_token_file().read_text(encoding="utf-8").strip()
    except OSError:
        raise ShareError(
            "no share admin token found", hint="start the service once with 'ferry serve'"
        ) from None
