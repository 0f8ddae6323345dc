"""E-mail through a real SMTP server (aiosmtpd on 127.0.0.1): link e-mail and download notice."""

from __future__ import annotations

import asyncio
import email
import os
import socket
from email.message import Message
from pathlib import Path

import aiohttp
from aiosmtpd.controller import Controller

from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import start_share_service, stop_share_service


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_link_email_and_download_notice_carry_no_file_name(ferry_home, tmp_path):
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "smtp.toml").write_text(
        f'host = "127.0.0.1"\nport = {controller.port}\nstarttls = false\n'
        'from = "ferry@example.org"\nnotify_to = "sender@example.org"\n'
    )
    name = "Smith_John_1970-01-01_MRI.zip"
    src = tmp_path / name
    src.write_bytes(os.urandom(10_000))
    handle, _ = await start_share_service("127.0.0.1:0")
    try:
        created = await ShareClient().create(
            local_file_source(src), name=name, size=src.stat().st_size,
            recipients=["doctor@example.org"], notify=True, send_links=True,
        )
        assert created["email_errors"] == []
        link_mail = next(m for m in inbox.messages if m["To"] == "doctor@example.org")
        body = link_mail.get_payload(decode=True).decode()
        assert created["links"][0]["url"] in body
        assert created["password"] not in body and "Smith" not in body
        assert "Smith" not in link_mail["Subject"] and name not in link_mail["Subject"]

        async with aiohttp.ClientSession() as s, s.post(
            created["links"][0]["url"] + "/download", data={"password": created["password"]}
        ) as resp:
            assert resp.status == 200 and await resp.read() == src.read_bytes()
        for _ in range(100):
            if any(m["To"] == "sender@example.org" for m in inbox.messages):
                break
            await asyncio.sleep(0.05)
        notice = next(m for m in inbox.messages if m["To"] == "sender@example.org")
        assert notice["Subject"] == "Your shared file was downloaded"
        text = notice.get_payload(decode=True).decode()
        assert "doctor@example.org" in text and created["share"]["id"] in text
        assert "Smith" not in text
    finally:
        await stop_share_service(handle)
        controller.stop()


def test_smtp_settings_are_optional(ferry_home: Path) -> None:
    from backend.shares.notify import load_smtp

    assert load_smtp() is None
