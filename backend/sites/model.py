"""The Site model: everything Ferry knows about one SFTP server, minus its secrets.

Secrets (passwords, key passphrases) never live on a Site; they are in the vault under
:func:`secret_name`. Pinned host keys are OpenSSH public-key lines (``ssh-ed25519 AAAA...``).
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field
from typing import Literal

from backend.errors import ConfigError

AuthMethod = Literal["agent", "key", "password"]
AUTH_METHODS: tuple[str, ...] = ("agent", "key", "password")
CIPHER_PROFILES: tuple[str, ...] = ("modern", "aes256")
LAYOUTS: tuple[str, ...] = ("generic", "inbox-outbox", "study-io")
UPLOAD_MODES: tuple[str, ...] = ("temp-rename", "direct")
# what each means: backend/sites/profile.py (PRESETS) and docs/transfers.md, "Server profiles"
SERVER_PROFILES: tuple[str, ...] = ("auto", "openssh", "aws-transfer-s3", "proftpd", "sftp-only")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._:\-\[\]%]{1,253}$")


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "root"


def local_user() -> str:
    """This machine's user name as shares and the audit log record it (a share's sender, who
    revoked or extended it); ``"unknown"`` when the platform cannot tell (no passwd entry).
    Unlike :func:`default_user` (an SSH login name) it never guesses ``root``."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass
class Site:
    name: str
    host: str
    port: int = 22
    user: str = field(default_factory=default_user)
    auth: str = "agent"  # one of AUTH_METHODS
    key_file: str | None = None
    host_keys: list[str] = field(default_factory=list)
    cipher_profile: str = "modern"  # one of CIPHER_PROFILES
    remote_dir: str = ""
    layout: str = "generic"  # one of LAYOUTS
    jump: str | None = None  # name of another site used as jump host
    keepalive: int = 30  # seconds between keepalives; 0 disables
    # transfer engine settings
    max_parallel: int = 4
    upload_mode: str = "temp-rename"  # one of UPLOAD_MODES
    temp_suffix: str = ".ferrypart"
    allow_exec: bool = True  # may run sha256sum over an exec channel for verification
    encrypt_at_rest: bool = False
    server_profile: str = "auto"  # one of SERVER_PROFILES: a preset, or what was detected
    # case layout folder names (relative to remote_dir); missing keys use the preset's defaults
    layout_folders: dict[str, str] = field(default_factory=dict)
    # refuse sends and shares of DICOM that still identifies the patient (docs/cases.md)
    require_deidentified: bool = False
    last_connected: str | None = None

    def validate(self) -> Site:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if not _NAME_RE.match(self.name or ""):
            raise ConfigError(
                f"invalid site name {self.name!r}: use letters, digits, '.', '_' or '-' (max 64)"
            )
        if not self.host or not _HOST_RE.match(self.host):
            raise ConfigError(f"site {self.name}: invalid host {self.host!r}")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(f"site {self.name}: port must be 1-65535, got {self.port!r}")
        if not self.user or any(c in self.user for c in "\x00\n\r@ "):
            raise ConfigError(f"site {self.name}: invalid user {self.user!r}")
        if self.auth not in AUTH_METHODS:
            raise ConfigError(f"site {self.name}: auth must be one of {', '.join(AUTH_METHODS)}")
        if self.auth == "key" and not self.key_file:
            raise ConfigError(f"site {self.name}: auth 'key' needs a key file (--key FILE)")
        if self.cipher_profile not in CIPHER_PROFILES:
            raise ConfigError(
                f"site {self.name}: cipher profile must be one of {', '.join(CIPHER_PROFILES)}"
            )
        if self.layout not in LAYOUTS:
            raise ConfigError(f"site {self.name}: layout must be one of {', '.join(LAYOUTS)}")
        if self.upload_mode not in UPLOAD_MODES:
            raise ConfigError(
                f"site {self.name}: upload_mode must be one of {', '.join(UPLOAD_MODES)}"
            )
        if self.server_profile not in SERVER_PROFILES:
            raise ConfigError(
                f"site {self.name}: server_profile must be one of {', '.join(SERVER_PROFILES)}"
                f", got {self.server_profile!r}"
            )
        if not isinstance(self.max_parallel, int) or not 1 <= self.max_parallel <= 64:
            raise ConfigError(f"site {self.name}: max_parallel must be 1-64")
        if not isinstance(self.keepalive, int) or self.keepalive < 0:
            raise ConfigError(f"site {self.name}: keepalive must be a number of seconds >= 0")
        if not self.temp_suffix or "/" in self.temp_suffix:
            raise ConfigError(f"site {self.name}: temp_suffix must be a non-empty name suffix")
        if self.jump == self.name:
            raise ConfigError(f"site {self.name}: a site cannot be its own jump host")
        return self

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


SecretKind = Literal["password", "passphrase", "encryption-key"]
"""The secrets the vault keeps per site (:func:`secret_name`)."""
SECRET_KINDS: tuple[SecretKind, ...] = ("password", "passphrase", "encryption-key")


def secret_name(site_name: str, kind: SecretKind) -> str:
    """The vault entry holding a site's password, its key's passphrase, or its
    encryption-at-rest key (backend/atrest.py)."""
    return f"site/{site_name}/{kind}"
