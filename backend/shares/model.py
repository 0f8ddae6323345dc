"""Share and Recipient records, and the status rules.

A share is active, expired, revoked, exhausted (every link used up), broken (its stored file
is missing or damaged: nothing can be served; kept for the operator to see until it expires or
is revoked) or purged (deleted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Recipient:
    id: str
    share_id: str
    email: str | None
    token_hash: str
    downloads: int = 0
    bytes_served: int = 0
    failed_attempts: int = 0
    locked_until: datetime | None = None
    last_download_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "downloads": self.downloads,
            "last_download_at": self.last_download_at,
            "failed_attempts": self.failed_attempts,
        }


@dataclass
class Share:
    id: str
    name: str
    size: int
    sha256: str
    created_at: datetime
    expires_at: datetime
    max_downloads: int
    password_hash: str | None
    blob_id: str
    sender: str
    message: str = ""
    notify: bool = False
    revoked_at: datetime | None = None
    purged_at: datetime | None = None
    purge_reason: str | None = None
    broken_at: datetime | None = None
    broken_reason: str | None = None
    recipients: list[Recipient] = field(default_factory=list)

    def recipient_exhausted(self, r: Recipient) -> bool:
        return self.max_downloads > 0 and r.downloads >= self.max_downloads

    def status(self, now: datetime | None = None) -> str:
        now = now or utcnow()
        if self.purged_at is not None:
            return "purged"
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if self.broken_at is not None:
            return "broken"
        if self.recipients and all(self.recipient_exhausted(r) for r in self.recipients):
            return "exhausted"
        return "active"

    def public(self) -> dict[str, Any]:
        """What the admin API and ``ferry share list --json`` show (no hashes, no keys)."""
        data = asdict(self)
        for secret in ("password_hash", "blob_id"):
            data.pop(secret)
        data["password_protected"] = self.password_hash is not None
        data["status"] = self.status()
        data["downloads"] = sum(r.downloads for r in self.recipients)
        data["recipients"] = [r.public() for r in self.recipients]
        return data
