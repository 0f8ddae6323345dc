"""Share policy: defaults and hard caps no request can exceed.

Read from ``$FERRY_HOME/share-policy.toml``.

Example file (every key optional)::

    default_expiry = "3d"
    max_expiry = "7d"
    max_size = "1GiB"
    max_recipients = 10
    default_max_downloads = 0      # 0 = unlimited
    max_downloads_cap = 0          # 0 = no cap
    password_required = true
    allowed_domains = ["nhs.net", "example.org"]   # empty = any domain
    require_deidentified = false   # refuse to share identifying DICOM (docs/sharing.md)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import tomlkit

from backend.errors import ConfigError, ShareError, UsageError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 10**6, "mb": 10**6,
               "mib": 1 << 20, "g": 10**9, "gb": 10**9, "gib": 1 << 30, "t": 10**12,
               "tb": 10**12, "tib": 1 << 40, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30,
               "ti": 1 << 40}


def policy_file() -> Path:
    from backend.paths import ferry_home

    return ferry_home() / "share-policy.toml"


def parse_duration(text: str | int) -> timedelta:
    """``"3d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"`` (or seconds as an int)."""
    if isinstance(text, int):
        return timedelta(seconds=text)
    m = _DURATION.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise UsageError(f"invalid duration {text!r}", hint="use e.g. 3d, 12h, 30m or 90s")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    unit = (m.group(2) or "").lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise UsageError(f"invalid size {text!r}", hint="use e.g. 1GiB, 500MB or 1048576")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def format_duration(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0 and secs >= n:
            return f"{secs // n}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class Policy:
    default_expiry: timedelta = timedelta(days=3)
    max_expiry: timedelta = timedelta(days=7)
    max_size: int = 1 << 30
    max_recipients: int = 10
    default_max_downloads: int = 0
    max_downloads_cap: int = 0
    password_required: bool = True
    allowed_domains: tuple[str, ...] = field(default_factory=tuple)
    # ``ferry share create`` refuses DICOM that still identifies the patient (checked by the
    # CLI before upload: backend/dicom/policy.py), as a site's require_deidentified does
    require_deidentified: bool = False

    def check_expiry(self, expires: timedelta) -> None:
        if expires <= timedelta(0):
            raise ShareError("expiry must be in the future")
        if expires > self.max_expiry:
            raise ShareError(
                f"expiry {format_duration(expires)} exceeds the policy maximum "
                f"{format_duration(self.max_expiry)}",
                hint="choose a shorter --expires or raise max_expiry in share-policy.toml",
            )

    def check_size(self, size: int) -> None:
        if size > self.max_size:
            raise ShareError(
                f"file is {size} bytes, over the policy maximum of {self.max_size} bytes",
                hint="raise max_size in share-policy.toml or share a smaller file",
            )

    def check_recipients(self, emails: list[str]) -> None:
        if len(emails) > self.max_recipients:
            raise ShareError(
                f"{len(emails)} recipients is over the policy maximum of {self.max_recipients}",
                hint="split the recipients over several shares",
            )
        for email in emails:
            domain = email.rsplit("@", 1)[-1].lower()
            if self.allowed_domains and domain not in self.allowed_domains:
                raise ShareError(
                    f"recipient domain {domain!r} is not allowed by the share policy",
                    hint="allowed: " + ", ".join(self.allowed_domains),
                )

    def check_downloads(self, max_downloads: int) -> None:
        if max_downloads < 0:
            raise ShareError("--max-downloads must be 0 (unlimited) or more")
        cap = self.max_downloads_cap
        if cap and (max_downloads == 0 or max_downloads > cap):
            raise ShareError(
                f"download limit must be between 1 and the policy maximum "
                f"{self.max_downloads_cap}",
                hint="pass --max-downloads N",
            )


def load_policy(path: Path | None = None) -> Policy:
    """The policy file, or the built-in defaults when it does not exist."""
    path = path or policy_file()
    if not path.exists():
        return Policy()
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except Exception as exc:
        raise ConfigError(f"cannot read share policy {path}: {exc}") from None
    base = Policy()
    try:
        policy = Policy(
            default_expiry=parse_duration(data.get("default_expiry", "3d")),
            max_expiry=parse_duration(data.get("max_expiry", format_duration(base.max_expiry))),
            max_size=parse_size(data.get("max_size", base.max_size)),
            max_recipients=int(data.get("max_recipients", base.max_recipients)),
            default_max_downloads=int(data.get("default_max_downloads", 0)),
            max_downloads_cap=int(data.get("max_downloads_cap", 0)),
            password_required=bool(data.get("password_required", True)),
            allowed_domains=tuple(str(d).lower() for d in data.get("allowed_domains", [])),
            require_deidentified=bool(data.get("require_deidentified", False)),
        )
    except (UsageError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid share policy {path}: {exc}") from None
    if policy.default_expiry > policy.max_expiry:
        raise ConfigError(f"invalid share policy {path}: default_expiry exceeds max_expiry")
    return policy
