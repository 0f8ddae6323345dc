"""Ferry's domain errors and the exit code each maps to.

Every error a user can cause or meet (bad config, wrong passphrase, unknown host key, network
fault, missing remote file...) is a :class:`FerryError` subclass carrying a one-line message that
says what to do. The CLI prints ``ferry: <message>`` and exits with ``exit_code``; the TUI shows
the message as a notification. ``docs/cli.md`` documents the codes; keep the two in step.
"""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error Ferry expects. ``str(err)`` is the one-line message for the user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class UsageError(FerryError):
    """Wrong flags or arguments."""

    exit_code = 2


class ConfigError(FerryError):
    """A broken or missing configuration file, an unknown site, an invalid setting."""

    exit_code = 3


class VaultError(FerryError):
    """The secret vault is locked, corrupt, or the master passphrase is wrong."""

    exit_code = 4


class ConnectError(FerryError):
    """The host could not be reached: DNS failure, refused, timed out, connection lost."""

    exit_code = 5


class AuthError(FerryError):
    """The server refused every authentication method Ferry tried."""

    exit_code = 6


class HostKeyUnknownError(FerryError):
    """The server presented a host key that is not pinned for this site."""

    exit_code = 7

    def __init__(self, message: str, *, fingerprint: str, key_type: str, hint: str | None = None):
        self.fingerprint = fingerprint
        self.key_type = key_type
        super().__init__(message, hint=hint)


class HostKeyChangedError(FerryError):
    """The server presented a key different from the pinned one: possible man-in-the-middle."""

    exit_code = 8

    def __init__(
        self,
        message: str,
        *,
        old_fingerprints: list[str],
        new_fingerprint: str,
        key_type: str = "",
        hint: str | None = None,
    ):
        self.old_fingerprints = old_fingerprints
        self.new_fingerprint = new_fingerprint
        self.key_type = key_type
        super().__init__(message, hint=hint)


class RemoteNotFoundError(FerryError):
    """A remote or local path does not exist."""

    exit_code = 9


class PermissionDeniedError(FerryError):
    """The server (or the local file system) refused access to a path."""

    exit_code = 10


class TransferError(FerryError):
    """One or more files failed to transfer; the message summarises which."""

    exit_code = 11


class IntegrityError(FerryError):
    """Data failed verification: checksum mismatch, tampered or truncated ciphertext, wrong key."""

    exit_code = 12


class ShareError(FerryError):
    """The share service refused a request or could not be reached."""

    exit_code = 13


class UnsafeNameError(FerryError):
    """A remote name that could escape its folder or hide itself (``..``, ``/``, NUL...)."""

    exit_code = 14


class CancelledByUser(FerryError):
    """The user declined (e.g. cancelled a host-key prompt)."""

    exit_code = 15


class LimitExceededError(FerryError):
    """A recursive walk passed a cap on entries, depth or bytes (backend/limits.py)."""

    exit_code = 16


class PolicyError(FerryError):
    """A case refused by a content check: more than one study, non-DICOM files, identifying
    data for a site that requires de-identified studies, burned-in annotation. The message
    names what was found; the hint names the flag that splits, de-identifies or overrides."""

    exit_code = 17

    def __init__(self, message: str, *, lines: list[str] | None = None, kind: str = "",
                 hint: str | None = None) -> None:
        self.lines = list(lines or [])  # what was found, one display-safe line each
        self.kind = kind  # "isolation", "identifiable" or "burned-in"
        super().__init__(message, hint=hint)

class AgentError(FerryError):
    """The Ferry agent could not be reached or started, refused this client, or speaks another
    protocol version (docs/agent.md)."""

    exit_code = 18


EXIT_INTERRUPTED = 130
