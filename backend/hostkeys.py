"""Host keys: fingerprints, pinned-key parsing, and the trust decision for unknown keys.

Ferry pins host keys per site (``Site.host_keys``, OpenSSH public-key lines) instead of using
``~/.ssh/known_hosts``. Unknown keys are never accepted silently: the connection factory asks a
:class:`HostKeyPrompt` (the TUI's dialog, the CLI's question) or fails closed with
:class:`~backend.errors.HostKeyUnknownError`. A key that differs from a pinned one always fails
with :class:`~backend.errors.HostKeyChangedError`; there is no override.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from backend.errors import ConfigError


class TrustDecision(enum.Enum):
    ACCEPT_AND_SAVE = "accept"
    CONNECT_ONCE = "once"
    CANCEL = "cancel"


@dataclass(frozen=True)
class PresentedKey:
    """The host key a server showed, in the forms a person compares and a file stores."""

    key_type: str
    fingerprint: str
    line: str


HostKeyPrompt = Callable[[str, PresentedKey], Awaitable[TrustDecision | None]]
"""``await prompt(site_name, presented_key)`` -> what to do with an unknown host key (None: no
one could be asked; the connection fails closed, backend/ssh.py)."""


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The key's SHA-256 fingerprint as OpenSSH prints it: ``SHA256:base64``."""
    return key.get_fingerprint("sha256")


def key_line(key: asyncssh.SSHKey) -> str:
    """The OpenSSH public-key line without comment, e.g. ``ssh-ed25519 AAAA...``."""
    parts = key.export_public_key("openssh").decode("ascii").split()
    return " ".join(parts[:2])


def presented(key: asyncssh.SSHKey) -> PresentedKey:
    return PresentedKey(
        key_type=key.get_algorithm(), fingerprint=fingerprint(key), line=key_line(key)
    )


def parse_pinned(site_name: str, lines: list[str]) -> list[asyncssh.SSHKey]:
    """Import a site's pinned key lines; a malformed line is a config error, not ignored."""
    keys = []
    for line in lines:
        try:
            keys.append(asyncssh.import_public_key(line))
        except (asyncssh.KeyImportError, ValueError):
            raise ConfigError(
                f"site {site_name}: pinned host key is not a valid OpenSSH public key: "
                f"{line[:40]!r}",
                hint=f"re-pin it with 'ferry sites trust {site_name}'",
            ) from None
    return keys


def fingerprint_of_line(line: str) -> str:
    return fingerprint(asyncssh.import_public_key(line))


def normalize_fingerprint(text: str) -> str:
    """Accept ``SHA256:xxx`` or bare ``xxx`` (with or without base64 padding)."""
    text = text.strip()
    if text.upper().startswith("SHA256:"):
        text = text[7:]
    return "SHA256:" + text.rstrip("=")
