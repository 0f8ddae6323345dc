"""E-mail for shares (aiosmtplib): recipients' link e-mails and the sender's download notices.

Settings live in ``$FERRY_HOME/smtp.toml``; without that file no e-mail is sent. ::

    host = "smtp.example.org"
    port = 587
    starttls = true            # or: tls = true for implicit TLS (port 465)
    username = "ferry"
    password_file = "/etc/ferry/smtp-password"   # first line; never in this file
    from = "ferry@example.org"
    notify_to = "me@example.org"                 # where download notices go

E-mails carry no patient data: never the file name (not in the subject, not in the body).
The link e-mail never contains the password: the sender passes it on by another channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import tomlkit

from backend.errors import ConfigError, ShareError

log = logging.getLogger("ferry.shares.notify")

LINK_SUBJECT = "A file has been shared with you"
NOTICE_SUBJECT = "Your shared file was downloaded"


def smtp_file() -> Path:
    from backend.paths import ferry_home

    return ferry_home() / "smtp.toml"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = "ferry@localhost"
    notify_to: str | None = None
    timeout: float = 30.0


def load_smtp(path: Path | None = None) -> SmtpSettings | None:
    path = path or smtp_file()
    if not path.exists():
        return None
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
        password = None
        if data.get("password_file"):
            password = Path(data["password_file"]).read_text(encoding="utf-8").splitlines()[0]
        tls = bool(data.get("tls", False))
        return SmtpSettings(
            host=str(data["host"]),
            port=int(data.get("port", 465 if tls else 587)),
            starttls=bool(data.get("starttls", not tls)),
            tls=tls,
            username=data.get("username"),
            password=password,
            sender=str(data.get("from", "ferry@localhost")),
            notify_to=data.get("notify_to") or data.get("from"),
            timeout=float(data.get("timeout", 30)),
        )
    except (KeyError, ValueError, TypeError, OSError, IndexError, Exception) as exc:
        raise ConfigError(f"invalid SMTP settings {path}: {exc}") from None


def link_email(settings: SmtpSettings, to: str, url: str, expires: str, sender: str,
               message: str, password_protected: bool) -> EmailMessage:
    msg = _base(settings, to, LINK_SUBJECT)
    lines = [
        f"{sender or 'A colleague'} has shared a file with you using Ferry.",
        "",
        f"Download it here: {url}",
        f"The link expires at {expires} (UTC); the file is deleted then.",
    ]
    if password_protected:
        lines.append("You need a password to download it. The sender will give it to you "
                     "separately (it is never sent in this e-mail).")
    if message:
        lines += ["", "Message from the sender:", message]
    lines += ["", "If you were not expecting this, ignore this e-mail."]
    msg.set_content("\n".join(lines))
    return msg


def notice_email(settings: SmtpSettings, to: str, share_id: str, recipient: str,
                 when: str) -> EmailMessage:
    msg = _base(settings, to, NOTICE_SUBJECT)
    msg.set_content(
        f"Share {share_id} was downloaded by {recipient} at {when} (UTC).\n\n"
        f"See 'ferry share show {share_id}' for details.\n"
    )
    return msg


def _base(settings: SmtpSettings, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    return msg


async def send(settings: SmtpSettings, msg: EmailMessage) -> None:
    import aiosmtplib

    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            start_tls=settings.starttls if not settings.tls else False,
            use_tls=settings.tls,
            timeout=settings.timeout,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ShareError(f"could not send e-mail via {settings.host}:{settings.port}: {exc}")
