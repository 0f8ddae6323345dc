"""Ferry's rotating debug log under ``$FERRY_HOME/logs``, with secrets redacted.

``setup_logging(verbose)`` installs a rotating file handler (1 MiB x 5) on the ``ferry`` logger
and, when verbose, a stderr handler. A redaction filter scrubs anything that looks like a
password, passphrase, private key block or share token from every record before it is written;
code must still never log secrets on purpose — the filter is the second line of defence.
Backend modules log with ``logging.getLogger("ferry.<module>")``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

from backend.paths import log_moves, logs_dir

_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(
        r"(?i)\b(password|passphrase|passwd|secret|token|api[_-]?key|authorization)"
        r"(\s*[=:]\s*|\s+)(\"[^\"]*\"|'[^']*'|\S+)"
    ),
    re.compile(r"/s/[A-Za-z0-9_\-]{16,}"),
]

_registered_secrets: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """Remember a secret this process handles so the log filter can redact it verbatim."""
    if not value:
        return
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if len(value) >= 4:
        _registered_secrets.add(value)


def redact(text: str) -> str:
    for secret in _registered_secrets:
        text = text.replace(secret, "[REDACTED]")
    text = _PATTERNS[0].sub("[REDACTED PRIVATE KEY]", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)
    text = _PATTERNS[2].sub("/s/[REDACTED]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_configured = False
_installed: list[tuple[logging.Logger, logging.Handler]] = []


def reset_logging() -> None:
    """Undo :func:`setup_logging` (for a process that runs the CLI more than once, as the tests
    do): its handlers are closed and removed and "ferry" records propagate again."""
    global _configured
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    logging.getLogger("ferry").propagate = True
    _configured = False


def setup_logging(verbose: bool = False) -> logging.Logger:
    """Install the rotating file log (always) and a stderr log (when ``verbose``)."""
    global _configured
    logger = logging.getLogger("ferry")
    if _configured:
        return logger
    _configured = True
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    path = logs_dir() / "ferry.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=5)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    _installed.append((logger, handler))
    if path.exists():
        os.chmod(path, 0o600)
    log_moves()  # an installation from before state and logs left the config folder
    if verbose:
        err = logging.StreamHandler(sys.stderr)
        err.setLevel(logging.DEBUG)
        err.setFormatter(logging.Formatter("ferry: %(levelname)s %(name)s: %(message)s"))
        err.addFilter(RedactingFilter())
        logger.addHandler(err)
        _installed.append((logger, err))
        for name in ("asyncssh", "aiohttp"):
            lib = logging.getLogger(name)
            lib.setLevel(logging.INFO)
            lib.addHandler(handler)
            _installed.append((lib, handler))
    return logger
