"""The share operations: create, list, revoke, extend, add recipients, download, purge.

:class:`ShareService` owns the rules; the web app (``web``) and the admin API only translate
HTTP to these calls, and an embedding program (``ferry demo``, the TUI) can call them directly.

* ``create_share`` takes an async iterator of plaintext chunks (a local file, an SFTP file, an
  HTTP upload), encrypts it on the fly with the container under a random per-share key, and
  stores the key wrapped by the server key in the metadata store, never beside the blob.
* Downloads decrypt on the fly in constant memory; a download counts when its last byte is
  sent. Ranged requests resume without counting again.
* Purging destroys the wrapped key first, then the blob. Every change is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backend.audit import AuditLog
from backend.crypto.container import new_decryptor, new_encryptor
from backend.errors import ShareError
from backend.shares import tokens
from backend.shares.blobs import BlobStore, FileBlobStore
from backend.shares.keys import ServerKey
from backend.shares.model import Recipient, Share, utcnow
from backend.shares.policy import Policy, load_policy
from backend.shares.ratelimit import FREE_TRIES, AddressLimiter, lock_seconds
from backend.shares.store import MetadataStore, SqliteMetadataStore

log = logging.getLogger("ferry.shares")

CHUNK = 512 * 1024
TICKET_SECONDS = 3600
_EMAIL_OK = set("abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-")


class LinkError(ShareError):
    """A recipient-side refusal, carrying the HTTP status the web app answers with."""

    status = 400

    def __init__(self, message: str, *, status: int, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class CreatedShare:
    share: Share
    links: list[dict[str, Any]]
    password: str | None

    def public(self) -> dict[str, Any]:
        return {"share": self.share.public(), "links": self.links, "password": self.password}


@dataclass
class Download:
    """An authorised download: which share, which recipient, and which byte range."""

    share: Share
    recipient: Recipient
    start: int = 0
    end: int = -1  # inclusive; -1 = to the end
    sent: int = field(default=0)

    @property
    def last(self) -> int:
        return self.share.size - 1 if self.end < 0 else self.end


def check_share_name(name: str) -> str:
    """A share's file name is user data shown to recipients (always escaped) and offered as
    the download name: it must be non-empty, printable and at most 255 bytes. Path
    separators are allowed here (browsers replace them when saving)."""
    from backend.names import display_name

    if not name.strip() or name in (".", "..") or display_name(name) != name:
        raise ShareError(f"invalid file name {display_name(name)!r} for a share",
                         hint="use a printable name (no control characters)")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ShareError("file name is longer than 255 bytes")
    return name


def normalise_email(email: str) -> str:
    email = email.strip()
    local, sep, domain = email.rpartition("@")
    if (
        not sep
        or not local
        or "." not in domain
        or len(email) > 254
        or not set(local.lower()) <= _EMAIL_OK
        or not set(domain.lower()) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    ):
        raise ShareError(f"invalid recipient e-mail address {email!r}")
    return f"{local}@{domain.lower()}"


class ShareService:
    def __init__(
        self,
        *,
        public_url: str,
        store: MetadataStore | None = None,
        blobs: BlobStore | None = None,
        server_key: ServerKey | None = None,
        policy: Policy | None = None,
        audit: AuditLog | None = None,
        on_download: Callable[[Share, Recipient], Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.store = store or SqliteMetadataStore()
        self.blobs = blobs or FileBlobStore()
        self.key = server_key or ServerKey.load_or_create()
        self.policy = policy or load_policy()
        self.audit = audit or AuditLog()
        self.on_download = on_download
        self.clock = clock
        self.addresses = AddressLimiter()
        self._purge_lock = asyncio.Lock()
        # argon2id is memory-hard (64 MiB per check): bound how many run at once
        self._hashing = asyncio.Semaphore(max(1, min(4, os.cpu_count() or 1)))

    # -- helpers --------------------------------------------------------------------------
    def link(self, token: str) -> str:
        return f"{self.public_url}/s/{token}"

    def _audit(self, event: str, **fields: Any) -> None:
        try:
            self.audit.append(event, **fields)
        except Exception:  # the audit log must not take the service down; log loudly
            log.exception("could not append %s to the audit log", event)

    def get_share(self, share_id: str) -> Share:
        share = self.store.get_share(share_id)
        if share is None:
            raise ShareError(f"no share with id {share_id!r}", hint="see 'ferry share list'")
        return share

    def list_shares(self) -> list[Share]:
        return self.store.list_shares()

    def _new_recipient(self, share_id: str, email: str | None) -> tuple[Recipient, str]:
        token = tokens.new_token()
        return Recipient(tokens.new_id(), share_id, email, tokens.token_hash(token)), token

    # -- create ---------------------------------------------------------------------------
    def validate(
        self,
        *,
        name: str,
        size: int,
        recipients: list[str] | None = None,
        expires: timedelta | None = None,
        max_downloads: int | None = None,
        password: str | None = None,
        generate_password: bool = False,
        message: str = "",
        notify: bool = False,
        sender: str = "",
    ) -> dict[str, Any]:
        """Check a share request against the policy caps before any byte is read.

        Returns the normalised options (e-mails lower-cased, defaults applied, password
        generated when asked for or required). Raises ShareError naming the cap.
        """
        check_share_name(name)
        if size < 0:
            raise ShareError("file size must not be negative")
        emails = [normalise_email(e) for e in recipients or []]
        if len(set(emails)) != len(emails):
            raise ShareError("a recipient is named twice")
        pol = self.policy
        pol.check_recipients(emails)
        pol.check_size(size)
        expires = expires or pol.default_expiry
        pol.check_expiry(expires)
        max_downloads = pol.default_max_downloads if max_downloads is None else max_downloads
        pol.check_downloads(max_downloads)
        if password is not None and generate_password:
            raise ShareError("give a password or ask for one to be generated, not both")
        if password is None and (generate_password or pol.password_required):
            password = tokens.generate_password()
        if password is not None and len(password) < 8:
            raise ShareError("share password is too short: use at least 8 characters")
        if len(message) > 4000:
            raise ShareError("message is too long (4000 characters at most)")
        return {
            "name": name, "size": size, "recipients": emails, "expires": expires,
            "max_downloads": max_downloads, "password": password, "message": message,
            "notify": notify, "sender": sender,
        }

    async def create_share(
        self, source: AsyncIterator[bytes], **options: Any
    ) -> CreatedShare:
        """Encrypt ``source`` (exactly ``size`` bytes) into a new share.

        Options as for :meth:`validate` (``name``, ``size``, ``recipients``, ``expires``,
        ``max_downloads``, ``password``, ``generate_password``, ``message``, ``notify``,
        ``sender``); every cap is checked before the first byte is read.
        """
        opts = self.validate(**options)
        name, size, emails = opts["name"], opts["size"], opts["recipients"]
        expires, max_downloads, password = opts["expires"], opts["max_downloads"], opts["password"]
        message, notify, sender = opts["message"], opts["notify"], opts["sender"]

        share_id = tokens.new_id()
        blob_id = tokens.new_id() + tokens.new_id()
        share_key = os.urandom(32)
        digest = await self._store_blob(source, blob_id, share_key, name, size)
        now = self.clock()
        share = Share(
            id=share_id, name=name, size=size, sha256=digest, created_at=now,
            expires_at=now + expires, max_downloads=max_downloads,
            password_hash=(
                await asyncio.to_thread(tokens.hash_password, password) if password else None
            ),
            blob_id=blob_id, sender=sender, message=message, notify=notify,
        )
        links = []
        for email in emails or [None]:
            recipient, token = self._new_recipient(share_id, email)
            share.recipients.append(recipient)
            links.append({"recipient_id": recipient.id, "email": email, "url": self.link(token)})
        try:
            self.store.add_share(share, self.key.wrap(share_key, share_id))
        except BaseException:
            self.blobs.delete(blob_id)
            raise
        self._audit(
            "share.created", actor=sender or None, share=share_id, name=name, size=size,
            sha256=digest, recipients=emails, expires_at=share.expires_at.isoformat(),
            max_downloads=max_downloads, password=password is not None,
        )
        return CreatedShare(share, links, password)

    async def _store_blob(
        self, source: AsyncIterator[bytes], blob_id: str, key: bytes, name: str, size: int
    ) -> str:
        enc = new_encryptor(key=key, size=size)  # the name stays out of the blob header
        writer = self.blobs.new_writer(blob_id)
        hasher = hashlib.sha256()
        received = 0
        pending: list[bytes] = [enc.header()]
        pending_len = 0

        def flush(parts: list[bytes]) -> None:
            for part in parts:
                writer.write(part)

        try:
            async for chunk in source:
                if not chunk:
                    continue
                received += len(chunk)
                if received > size:
                    raise ShareError(f"the file is larger than the declared {size} bytes")
                hasher.update(chunk)
                pending.append(enc.update(chunk))
                pending_len += len(chunk)
                if pending_len >= CHUNK:
                    parts, pending, pending_len = pending, [], 0
                    await asyncio.to_thread(flush, parts)
            if received != size:
                raise ShareError(
                    f"the upload ended after {received} of {size} bytes; nothing was shared"
                )
            pending.append(enc.finalize())
            await asyncio.to_thread(flush, pending)
            await asyncio.to_thread(writer.commit)
        except BaseException:
            writer.abort()
            raise
        return hasher.hexdigest()

    # -- edit -----------------------------------------------------------------------------
    def _editable(self, share_id: str) -> Share:
        share = self.get_share(share_id)
        status = share.status(self.clock())
        if status in ("purged", "revoked"):
            raise ShareError(f"share {share_id} is {status}; it can no longer be changed")
        return share

    async def revoke(self, share_id: str, actor: str = "") -> Share:
        """Revoke now and delete for real (wrapped key, then blob)."""
        share = self.get_share(share_id)
        if share.revoked_at is None and share.purged_at is None:
            self.store.update_share(share_id, revoked_at=self.clock())
            self._audit("share.revoked", actor=actor or None, share=share_id)
        await self.purge()
        return self.get_share(share_id)

    def extend(self, share_id: str, expires: timedelta, actor: str = "") -> Share:
        """Set the expiry to now + ``expires`` (within the policy maximum)."""
        share = self._editable(share_id)
        self.policy.check_expiry(expires)
        new = self.clock() + expires
        self.store.update_share(share_id, expires_at=new)
        self._audit(
            "share.extended", actor=actor or None, share=share_id, expires_at=new.isoformat(),
            previous=share.expires_at.isoformat(),
        )
        return self.get_share(share_id)

    def add_recipient(self, share_id: str, email: str, actor: str = "") -> dict[str, Any]:
        share = self._editable(share_id)
        if share.status(self.clock()) != "active" and share.status(self.clock()) != "exhausted":
            raise ShareError(f"share {share_id} is {share.status(self.clock())}")
        email = normalise_email(email)
        existing = [r.email for r in share.recipients if r.email]
        if email in existing:
            raise ShareError(f"{email} is already a recipient of share {share_id}")
        self.policy.check_recipients([*existing, email])
        recipient, token = self._new_recipient(share_id, email)
        self.store.add_recipient(recipient)
        self._audit("share.recipient_added", actor=actor or None, share=share_id, recipient=email)
        return {"recipient_id": recipient.id, "email": email, "url": self.link(token)}

    # -- purge ----------------------------------------------------------------------------
    async def purge(self) -> list[str]:
        """Delete expired, revoked and exhausted shares for real. Returns the purged ids."""
        purged: list[str] = []
        async with self._purge_lock:
            now = self.clock()
            for share in self.store.list_shares():
                status = share.status(now)
                if status in ("active", "purged"):
                    continue
                self.store.destroy_key(share.id)
                await asyncio.to_thread(self.blobs.delete, share.blob_id)
                self.store.update_share(share.id, purged_at=now, purge_reason=status)
                self._audit("share.purged", actor="ferry-service", share=share.id, reason=status)
                purged.append(share.id)
        return purged

    # -- recipient side -------------------------------------------------------------------
    def lookup(self, token: str, address: str) -> tuple[Share, Recipient]:
        """The share behind a link, or LinkError 404/410/429."""
        wait = self.addresses.retry_after(address)
        if wait > 0:
            self._audit("share.attempt_locked", actor="anonymous", address=address,
                        retry_after=int(wait) + 1)
            raise LinkError(
                "too many wrong attempts from your address; try again later",
                status=429, retry_after=int(wait) + 1,
            )
        found = self.store.find_by_token_hash(tokens.token_hash(token))
        if found is None:
            self.addresses.failure(address)
            self._audit("share.bad_link", actor="anonymous", address=address)
            raise LinkError("this link does not exist", status=404)
        share, recipient = found
        status = share.status(self.clock())
        if status != "active":
            why = share.purge_reason or status if status == "purged" else status
            raise LinkError(self._gone_reason(why), status=410)
        if share.recipient_exhausted(recipient):
            raise LinkError(
                "this link has been used as many times as the sender allowed; the file is no "
                "longer available through it", status=410,
            )
        if self.policy_bytes_exceeded(share, recipient):
            raise LinkError("this link's download allowance is used up", status=410)
        return share, recipient

    @staticmethod
    def _gone_reason(status: str) -> str:
        return {
            "expired": "this link has expired and the file has been deleted",
            "revoked": "the sender withdrew this file; it has been deleted",
            "exhausted": "this file has been downloaded as many times as allowed and deleted",
            "purged": "this file has been deleted",
        }.get(status, "this file is no longer available")

    @staticmethod
    def policy_bytes_exceeded(share: Share, recipient: Recipient) -> bool:
        """Resumes are free, but not unlimited: (max_downloads + 2) x size bytes per link."""
        if share.max_downloads <= 0:
            return False
        return recipient.bytes_served >= (share.max_downloads + 2) * max(share.size, 1)

    async def authenticate(self, token: str, password: str, address: str) -> Download:
        """Check the password for a link, with lockouts. Raises LinkError 403/404/410/429."""
        share, recipient = self.lookup(token, address)
        now = self.clock()
        if recipient.locked_until is not None and recipient.locked_until > now:
            wait = int((recipient.locked_until - now).total_seconds()) + 1
            self._audit(
                "share.attempt_locked", actor="anonymous", share=share.id,
                recipient=recipient.email or recipient.id, address=address, retry_after=wait,
            )
            raise LinkError(
                "too many wrong passwords for this link; try again later",
                status=429, retry_after=wait,
            )
        if share.password_hash is None:
            return Download(share, recipient)
        ok = False
        if password:
            async with self._hashing:
                ok = await asyncio.to_thread(tokens.verify_password, share.password_hash, password)
        if ok:
            if recipient.failed_attempts:
                self.store.update_recipient(recipient.id, failed_attempts=0, locked_until=None)
            return Download(share, recipient)
        failures = recipient.failed_attempts + 1
        wait = lock_seconds(failures)
        locked = now + timedelta(seconds=wait) if wait else None
        self.store.update_recipient(recipient.id, failed_attempts=failures, locked_until=locked)
        self.addresses.failure(address)
        self._audit(
            "share.password_failed", actor="anonymous", share=share.id,
            recipient=recipient.email or recipient.id, address=address, failures=failures,
        )
        left = max(0, FREE_TRIES - failures)
        raise LinkError(
            f"wrong password; {left} tries left before this link is locked for a while"
            if left else "wrong password; this link is now locked for a while",
            status=403,
        )

    def issue_ticket(self, d: Download) -> str:
        """A short-lived signed cookie value standing in for the password (browser resumes)."""
        expiry = int(self.clock().timestamp()) + TICKET_SECONDS
        msg = f"{d.recipient.id}.{d.recipient.token_hash}.{expiry}"
        return f"{expiry}.{self.key.sign(msg)}"

    def check_ticket(self, token: str, ticket: str, address: str) -> Download | None:
        share, recipient = self.lookup(token, address)
        try:
            expiry_text, sig = ticket.split(".", 1)
            expiry = int(expiry_text)
        except ValueError:
            return None
        if expiry < self.clock().timestamp():
            return None
        if not self.key.check(f"{recipient.id}.{recipient.token_hash}.{expiry}", sig):
            return None
        return Download(share, recipient)

    async def stream(self, d: Download) -> AsyncIterator[bytes]:
        """Plaintext bytes ``d.start..d.last`` decrypted on the fly; counts ``d.sent``."""
        wrapped = self.store.wrapped_key(d.share.id)
        if wrapped is None:
            raise LinkError("this file has been deleted", status=410)
        key = self.key.unwrap(wrapped, d.share.id)
        fh = await asyncio.to_thread(self.blobs.open, d.share.blob_id)
        dec = new_decryptor(key=key)
        pos = 0  # plaintext offset of the next byte the decryptor yields
        first, last = d.start, d.last

        def step() -> tuple[bytes, bool]:
            data = fh.read(CHUNK)
            if not data:
                return dec.finalize(), True
            return dec.update(data), False

        try:
            done = False
            while not done and pos <= last:
                plain, done = await asyncio.to_thread(step)
                if not plain:
                    continue
                lo, hi = pos, pos + len(plain)
                pos = hi
                if hi <= first:
                    continue
                piece = plain[max(0, first - lo) : min(len(plain), last + 1 - lo)]
                if piece:
                    d.sent += len(piece)
                    yield piece
            if pos <= last:
                raise ShareError("the stored file is shorter than recorded")
            if not done and last == d.share.size - 1:
                # verify the tag on the final chunk: drain the rest (should be empty)
                while not done:
                    _, done = await asyncio.to_thread(step)
        finally:
            with contextlib.suppress(OSError):
                fh.close()

    def finish_download(self, d: Download, completed: bool, address: str) -> bool:
        """Record a download that ended; returns True if it counted as a full download."""
        counted = completed and d.last == d.share.size - 1 and d.sent == d.last - d.start + 1
        self.store.add_download(d.recipient.id, counted, d.sent)
        who = d.recipient.email or d.recipient.id
        if counted:
            self._audit(
                "share.downloaded", actor="anonymous", share=d.share.id, recipient=who,
                address=address, bytes=d.sent, resumed_from=d.start, sender=d.share.sender,
            )
            if self.on_download is not None:
                try:
                    self.on_download(d.share, d.recipient)
                except Exception:
                    log.exception("download notification failed")
        else:
            self._audit(
                "share.download_partial", actor="anonymous", share=d.share.id, recipient=who,
                address=address, start=d.start, bytes=d.sent, completed=completed,
            )
        return counted
