"""The share operations: create, list, revoke, extend, add recipients, download, purge.

:class:`ShareService` owns the rules; the web app (``web``) and the admin API only translate
HTTP to these calls, and an embedding program (``ferry demo``, the TUI) can call them directly.

* ``create_share`` takes an async iterator of plaintext chunks (a local file, an SFTP file, an
  HTTP upload), encrypts it on the fly with the container under a random per-share key, and
  stores the key wrapped by the server key in the metadata store, never beside the blob.
* Downloads decrypt on the fly in constant memory. Each takes a slot in the store before its
  first byte (``begin_download``) and releases it when it ends (``finish_download``); it counts
  only when every byte of the file has been delivered to that link (docs/sharing.md "Exact
  limits"). Revoke, expiry and purge stop running downloads within a second.
* Purging destroys the wrapped key first, then the blob. Every change is audited; refused
  requests are aggregated per address and minute (``backend/shares/refusals.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backend.audit import AuditLog
from backend.crypto.container import new_decryptor, new_encryptor
from backend.errors import FerryError, IntegrityError, ShareError
from backend.shares import tokens
from backend.shares.blobs import BlobStore, FileBlobStore
from backend.shares.keys import ServerKey
from backend.shares.model import Recipient, Share, utcnow
from backend.shares.policy import Policy, load_policy
from backend.shares.ratelimit import (
    FREE_TRIES,
    QUIET_SECONDS,
    AddressLimiter,
    lock_seconds,
)
from backend.shares.refusals import RefusalAggregator
from backend.shares.store import MetadataStore, SqliteMetadataStore

log = logging.getLogger("ferry.shares")

CHUNK = 512 * 1024
TICKET_SECONDS = 3600
LEASE_SECONDS = 30.0  # a download slot held by a process that stopped renewing it expires
CHECK_LEASE_SECONDS = 30.0  # a password check that never finished stops blocking the link
CHECK_WAIT_SECONDS = 10.0  # how long a request waits for another check of the same link
WATCH_SECONDS = 0.5  # how often running downloads are checked against revoke/expiry
STOP_WAIT_SECONDS = 1.0  # how long revoke/purge waits for cancelled downloads to end
VERIFIED_SECONDS = 60.0  # a right password is remembered (as an HMAC) this long per link


class LinkError(ShareError):
    """A recipient-side refusal, carrying the HTTP status the web app answers with."""

    status = 400

    def __init__(self, message: str, *, status: int, retry_after: int = 0,
                 share: Share | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.share = share


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
    sent: int = field(default=0)  # bytes handed to the connection
    slot: bool = False  # holds a download slot (the request reaches the last byte)
    reserved: int = 0  # bytes reserved against the link's allowance
    cancel: Callable[[], None] | None = None  # drops the connection (set by the web app)
    cancelled: bool = False
    ended: asyncio.Event | None = None

    __hash__ = object.__hash__
    __eq__ = object.__eq__

    @property
    def last(self) -> int:
        return self.share.size - 1 if self.end < 0 else self.end


# characters that change how text is shown without being visible: bidi controls and marks,
# zero-width characters, fillers that render as blanks (docs/security.md "Input")
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")


def check_visible_text(text: str, what: str, *, newlines: bool = False) -> str:
    """Refuse control, format (bidi, zero-width), private-use, unassigned and separator
    characters that would let a name or message hide or reorder what a recipient sees."""
    for ch in text:
        if newlines and ch in "\n\t":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ch in _INVISIBLE:
            raise ShareError(
                f"{what} contains an invisible or control character (U+{ord(ch):04X})",
                hint="remove direction marks, zero-width and control characters",
            )
    return text


def check_share_name(name: str) -> str:
    """A share's file name is user data shown to recipients (always escaped) and offered as
    the download name: it must be non-empty, printable and at most 255 bytes. Path
    separators are allowed here (browsers replace them when saving)."""
    from backend.names import display_name

    if not name.strip() or name in (".", "..") or display_name(name) != name:
        raise ShareError(f"invalid file name {display_name(name)!r} for a share",
                         hint="use a printable name (no control characters)")
    check_visible_text(name, "the file name")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ShareError("file name is longer than 255 bytes")
    return name


def normalise_email(email: str) -> str:
    """A recipient address checked by email-validator (syntax only, no DNS), without
    invisible characters; the domain is lower-cased."""
    from email_validator import EmailNotValidError, validate_email

    email = email.strip()
    shown = email.encode("ascii", "backslashreplace").decode()
    if len(email) > 254:
        raise ShareError(f"invalid recipient e-mail address {shown!r}: too long")
    check_visible_text(email, f"the recipient address {shown!r}")
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ShareError(f"invalid recipient e-mail address {shown!r}: {exc}") from None
    return f"{checked.local_part}@{checked.domain.lower()}"


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
        # unknown links per client address, wrong passwords per (address, link): shared by
        # every instance when the store offers it (PostgreSQL), else in this process
        shared = getattr(self.store, "address_limiter", None)
        self.addresses = shared("unknown-link") if shared else AddressLimiter()
        self.pair_limiter = shared("password") if shared else AddressLimiter()
        self.failure_memory = QUIET_SECONDS  # a link's failures are forgotten after this
        self.lease_seconds = LEASE_SECONDS
        self.refusals = RefusalAggregator(lambda event, f: self._audit(event, actor="anonymous",
                                                                        **f))
        self._checks: dict[str, _Gate] = {}
        self._verified: dict[str, tuple[bytes, float]] = {}
        self._verified_key = os.urandom(32)
        self._streams: dict[str, set[Download]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4),
                                      thread_name_prefix="ferry-share-io")
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
        check_visible_text(message, "the message", newlines=True)
        check_visible_text(sender, "the sender")
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
        await self._stop_streams(share_id)  # running downloads end now, not at their last byte
        await self.purge(wait=True)
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
    @contextlib.asynccontextmanager
    async def _purge_turn(self, wait: bool) -> AsyncIterator[bool]:
        """This instance's turn to purge: with a shared store (PostgreSQL) one instance at a
        time holds its advisory lock; the periodic purge skips a turn another one holds,
        a revoke waits for it (so its blob is deleted now, not at the next round)."""
        make = getattr(self.store, "advisory_lock", None)
        if make is None:
            yield True
            return
        lock = make("purge")
        got = await asyncio.to_thread(lock.acquire, wait)
        try:
            yield got
        finally:
            if got:
                await asyncio.to_thread(lock.release)

    async def purge(self, wait: bool = False) -> list[str]:
        """Delete expired, revoked and exhausted shares for real. Returns the purged ids.

        Downloads of a share being purged are cancelled first (within a second), so the blob's
        space is freed when it is deleted. Broken shares are kept (status ``broken``) for the
        operator to see until they expire or are revoked."""
        purged: list[str] = []
        async with self._purge_lock, self._purge_turn(wait) as mine:
            if not mine:
                return purged
            forget = getattr(self.store, "forget_address_failures", None)
            if forget is not None:
                await asyncio.to_thread(forget, QUIET_SECONDS)
            now = self.clock()
            for share in self.store.list_shares():
                status = share.status(now)
                if status in ("active", "purged", "broken"):
                    continue
                await self._stop_streams(share.id)
                self.store.destroy_key(share.id)
                await asyncio.to_thread(self.blobs.delete, share.blob_id)
                self.store.update_share(share.id, purged_at=now, purge_reason=status)
                self._audit("share.purged", actor="ferry-service", share=share.id, reason=status)
                purged.append(share.id)
        return purged

    # -- recipient side -------------------------------------------------------------------
    def _refused(self, event: str, address: str, share: str = "", **fields: Any) -> None:
        self.refusals.refused(event, address, share, **fields)

    def lookup(self, token: str, address: str) -> tuple[Share, Recipient]:
        """The share behind a link, or LinkError 404/410/429.

        Only unknown links are limited per address (a valid link is never refused because of
        what others sent from the same address, e.g. through one reverse proxy)."""
        found = self.store.find_by_token_hash(tokens.token_hash(token))
        if found is None:
            wait = self.addresses.retry_after(address)
            if wait > 0:
                self._refused("share.attempt_locked", address, reason="unknown links",
                              retry_after=int(wait) + 1)
                raise LinkError(
                    "too many unknown links from your address; try again later",
                    status=429, retry_after=int(wait) + 1,
                )
            self.addresses.failure(address)
            self._refused("share.bad_link", address)
            raise LinkError("this link does not exist", status=404)
        share, recipient = found
        status = share.status(self.clock())
        if status == "broken":
            raise LinkError(_BROKEN_MESSAGE, status=410)
        if status != "active":
            why = share.purge_reason or status if status == "purged" else status
            raise LinkError(self._gone_reason(why), status=410)
        if share.recipient_exhausted(recipient):
            raise LinkError(_EXHAUSTED_MESSAGE, status=410)
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
            "broken": _BROKEN_MESSAGE,
        }.get(status, "this file is no longer available")

    @staticmethod
    def bytes_cap(share: Share) -> int:
        """Resumes are free, but not unlimited: (max_downloads + 2) x size bytes per link
        (0 = no cap, for links without a download limit)."""
        if share.max_downloads <= 0:
            return 0
        return (share.max_downloads + 2) * max(share.size, 1)

    @classmethod
    def policy_bytes_exceeded(cls, share: Share, recipient: Recipient) -> bool:
        cap = cls.bytes_cap(share)
        return bool(cap) and recipient.bytes_served >= cap

    def _locked(self, share: Share, recipient: Recipient, address: str, wait: int,
                why: str) -> LinkError:
        self._refused("share.attempt_locked", address, share.id,
                      recipient=recipient.email or recipient.id, reason=why, retry_after=wait)
        return LinkError("too many wrong passwords for this link; try again later",
                         status=429, retry_after=wait)

    async def authenticate(self, token: str, password: str, address: str) -> Download:
        """Check the password for a link, with lockouts. Raises LinkError 403/404/410/429.

        The attempt is counted in the store BEFORE argon2 runs, and only when no other check
        for the link is running and the link is not locked, so parallel guesses get no more
        checks than the lockout allows (docs/sharing.md "Lockouts")."""
        share, recipient = self.lookup(token, address)
        if share.password_hash is None:
            return Download(share, recipient)
        pair = (address, recipient.id)
        wait_pair = self.pair_limiter.retry_after(pair)
        if wait_pair > 0:
            raise self._locked(share, recipient, address, int(wait_pair) + 1, "address")
        now = self.clock()
        if recipient.locked_until is not None and recipient.locked_until > now:
            wait = int((recipient.locked_until - now).total_seconds()) + 1
            raise self._locked(share, recipient, address, wait, "link")
        if password and self._recently_verified(recipient.id, password):
            return Download(share, recipient)  # the same right password again: no argon2
        gate = self._checks.setdefault(recipient.id, _Gate())
        gate.users += 1
        try:
            try:
                async with asyncio.timeout(CHECK_WAIT_SECONDS):
                    await gate.lock.acquire()
            except TimeoutError:
                raise self._locked(share, recipient, address, 1, "busy") from None
            try:
                return await self._check_password(share, recipient, password, address, pair)
            finally:
                gate.lock.release()
        finally:
            gate.users -= 1
            if not gate.users:
                self._checks.pop(recipient.id, None)

    def _password_tag(self, recipient_id: str, password: str) -> bytes:
        return hmac.digest(self._verified_key, f"{recipient_id}\0{password}".encode(
            "utf-8", "surrogatepass"), "sha256")

    def _recently_verified(self, recipient_id: str, password: str) -> bool:
        """True if this exact password was checked right for this link in the last
        VERIFIED_SECONDS (kept in memory only as an HMAC under a per-process key): many
        parallel downloads of one link do not queue for one argon2 check each. A wrong
        password never matches, so every guess still costs a counted check."""
        entry = self._verified.get(recipient_id)
        if entry is None:
            return False
        tag, until = entry
        if time.monotonic() >= until:
            self._verified.pop(recipient_id, None)
            return False
        return hmac.compare_digest(tag, self._password_tag(recipient_id, password))

    async def _check_password(self, share: Share, recipient: Recipient, password: str,
                              address: str, pair: tuple[str, str]) -> Download:
        if password and self._recently_verified(recipient.id, password):
            return Download(share, recipient)  # checked right while we waited
        now = self.clock()
        attempt = self.store.reserve_password_check(
            recipient.id, now=now, check_until=now + timedelta(seconds=CHECK_LEASE_SECONDS),
            reset_at=now + timedelta(seconds=self.failure_memory),
        )
        if attempt is None:  # locked (maybe by the check we waited for), or checked elsewhere
            fresh = self.store.find_by_token_hash(recipient.token_hash)
            locked = fresh[1].locked_until if fresh else None
            wait = int((locked - now).total_seconds()) + 1 if locked and locked > now else 1
            raise self._locked(share, recipient, address, wait, "link")
        ok = False
        recorded = False
        try:
            if password:
                async with self._hashing:
                    ok = await asyncio.to_thread(
                        tokens.verify_password, share.password_hash or "", password
                    )
            if ok:
                self.store.finish_password_check(recipient.id, ok=True, locked_until=None,
                                                 reset_at=None)
                recorded = True
                if len(self._verified) > 10000:
                    self._verified.clear()
                self._verified[recipient.id] = (
                    self._password_tag(recipient.id, password),
                    time.monotonic() + VERIFIED_SECONDS,
                )
                return Download(share, recipient)
            lock = lock_seconds(attempt)
            locked_until = now + timedelta(seconds=lock) if lock else None
            self.store.finish_password_check(
                recipient.id, ok=False, locked_until=locked_until,
                reset_at=(locked_until or now) + timedelta(seconds=self.failure_memory),
            )
            recorded = True
        finally:
            if not recorded:  # cancelled mid-check: the attempt stays counted, the check ends
                self.store.finish_password_check(
                    recipient.id, ok=False, locked_until=None,
                    reset_at=now + timedelta(seconds=self.failure_memory),
                )
        self.pair_limiter.failure(pair)
        self._audit(
            "share.password_failed", actor="anonymous", share=share.id,
            recipient=recipient.email or recipient.id, address=address, failures=attempt,
        )
        left = max(0, FREE_TRIES - attempt)
        raise LinkError(
            f"wrong password; {left} tries left before this link is locked for a while"
            if left else "wrong password; this link is now locked for a while",
            status=403, share=share,
        )

    def issue_ticket(self, d: Download) -> str:
        """A short-lived signed cookie value standing in for the password (browser resumes)."""
        expiry = int(self.clock().timestamp()) + TICKET_SECONDS
        msg = f"{d.recipient.id}.{d.recipient.token_hash}.{expiry}"
        return f"{expiry}.{self.key.sign(msg)}"

    def check_ticket(self, token: str, ticket: str, address: str) -> Download | None:
        share, recipient = self.lookup(token, address)
        expiry_text, _, sig = ticket.partition(".")
        if not (expiry_text.isascii() and expiry_text.isdigit()) or len(expiry_text) > 12:
            return None
        expiry = int(expiry_text)
        if expiry < self.clock().timestamp() or not sig.isascii():
            return None
        if not self.key.check(f"{recipient.id}.{recipient.token_hash}.{expiry}", sig):
            return None
        return Download(share, recipient)

    # -- downloads: slot, stream, release ---------------------------------------------------
    def begin_download(self, d: Download) -> None:
        """Take a download slot and reserve the bytes before the first byte is sent.

        Raises LinkError 410 (used up) or 429 (another download of this link is running and
        the limit leaves no room for a second one)."""
        share = d.share
        now = self.clock()
        d.slot = d.last == share.size - 1  # only a request reaching the end can complete
        d.reserved = d.last - d.start + 1
        ok = self.store.acquire_download(
            d.recipient.id, now=now, lease_until=now + timedelta(seconds=self.lease_seconds),
            max_downloads=share.max_downloads, slot=d.slot, nbytes=d.reserved,
            bytes_cap=self.bytes_cap(share),
        )
        if not ok:
            d.slot, d.reserved = False, 0
            fresh = self.store.find_by_token_hash(d.recipient.token_hash)
            recipient = fresh[1] if fresh else d.recipient
            if share.recipient_exhausted(recipient):
                raise LinkError(_EXHAUSTED_MESSAGE, status=410)
            if self.policy_bytes_exceeded(share, recipient):
                raise LinkError("this link's download allowance is used up", status=410)
            raise LinkError(
                "this link is being downloaded right now and its limit leaves no room for "
                "another download; try again when that one has finished",
                status=429, retry_after=int(self.lease_seconds),
            )
        d.ended = asyncio.Event()
        self._streams.setdefault(share.id, set()).add(d)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_streams())

    async def open_stream(self, d: Download) -> PlainStream:
        """Open the blob for ``d`` and decrypt its first segment BEFORE any header is sent.

        A missing, short or damaged blob (or a destroyed key) raises LinkError 410; a blob
        problem also marks the share broken (``ferry share list``) and is audited."""
        wrapped = self.store.wrapped_key(d.share.id)
        if wrapped is None:
            raise LinkError("this file has been deleted", status=410)
        key = self.key.unwrap(wrapped, d.share.id)
        try:
            fh = await asyncio.to_thread(self.blobs.open, d.share.blob_id)
        except (ShareError, OSError) as exc:
            raise self._broken(d.share, f"the stored file is missing ({exc})") from None
        stream = PlainStream(fh, new_decryptor(key=key), d, self._io)
        try:
            await stream.prime()
        except IntegrityError as exc:
            stream.close()
            raise self._broken(d.share, f"the stored file is damaged: {exc}") from None
        except BaseException:
            stream.close()
            raise
        return stream

    def _broken(self, share: Share, reason: str) -> LinkError:
        log.error("share %s: %s", share.id, reason)
        if self.store.mark_broken(share.id, self.clock(), reason):
            self._audit("share.broken", actor="ferry-service", share=share.id, reason=reason)
        return LinkError(_BROKEN_MESSAGE, status=410)

    def finish_download(self, d: Download, address: str) -> bool:
        """Release ``d``'s slot; returns True if it completed the file and so counted."""
        if d.ended is not None:
            self._streams.get(d.share.id, set()).discard(d)
            if not self._streams.get(d.share.id):
                self._streams.pop(d.share.id, None)
            d.ended.set()
        counted = self.store.release_download(
            d.recipient.id, now=self.clock(), slot=d.slot, reserved=d.reserved, start=d.start,
            sent=d.sent, size=d.share.size, max_downloads=d.share.max_downloads,
        )
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
                address=address, start=d.start, bytes=d.sent,
                completed=d.start + d.sent >= d.share.size, cancelled=d.cancelled or None,
            )
        return counted

    def cancel_streams(self, share_id: str) -> list[Download]:
        """Stop every running download of ``share_id`` now (the connection is dropped)."""
        running = list(self._streams.get(share_id, ()))
        for d in running:
            d.cancelled = True
            if d.cancel is not None:
                d.cancel()
        return running

    async def _stop_streams(self, share_id: str) -> None:
        running = self.cancel_streams(share_id)
        waits = [asyncio.ensure_future(d.ended.wait()) for d in running if d.ended]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=STOP_WAIT_SECONDS)
            for w in pending:
                w.cancel()

    async def _watch_streams(self) -> None:
        """While downloads run: cancel those of shares no longer active (revoked, expired,
        purged elsewhere) every half second, and renew their leases."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while self._streams:
            await asyncio.sleep(WATCH_SECONDS)
            now = self.clock()
            try:
                for share_id in self.store.inactive_shares(list(self._streams), now):
                    self.cancel_streams(share_id)
                if loop.time() - renewed >= self.lease_seconds / 3:
                    renewed = loop.time()
                    ids = sorted({d.recipient.id for ds in self._streams.values() for d in ds})
                    self.store.renew_leases(
                        ids, now, now + timedelta(seconds=self.lease_seconds)
                    )
            except Exception:
                log.exception("could not check running downloads")


_BROKEN_MESSAGE = (
    "the stored file is missing or damaged, so it cannot be sent; the sender can see this in "
    "'ferry share list' and can share the file again"
)
_EXHAUSTED_MESSAGE = (
    "this link has been used as many times as the sender allowed; the file is no longer "
    "available through it"
)


@dataclass
class _Gate:
    """At most one password check per link at a time in this process (plus the store's
    check lease across processes)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class PlainStream:
    """Plaintext bytes ``d.start..d.last`` of a blob, decrypted on the fly in a thread.

    :meth:`prime` reads and decrypts the first chunk (so a bad blob is found before any header
    is sent); iterate for the pieces; :meth:`close` closes the blob, deferred until a read
    still running in the thread has finished."""

    def __init__(self, fh: Any, dec: Any, d: Download, pool: ThreadPoolExecutor) -> None:
        self._fh = fh
        self._dec = dec
        self._d = d
        self._pool = pool
        self._reading: Future[tuple[bytes, bool]] | None = None
        self._closed = False
        self._pos = 0  # plaintext offset of the next byte the decryptor yields
        self._first: tuple[bytes, bool] | None = None

    def _step(self) -> tuple[bytes, bool]:
        data = self._fh.read(CHUNK)
        if not data:
            return self._dec.finalize(), True
        return self._dec.update(data), False

    async def _read(self) -> tuple[bytes, bool]:
        if self._closed:
            raise ShareError("the download was stopped")
        self._reading = self._pool.submit(self._step)
        return await asyncio.wrap_future(self._reading)

    async def prime(self) -> None:
        expected = await asyncio.wrap_future(  # an object store answers over the network
            self._pool.submit(ciphertext_size_for, self._fh, self._d.share.size))
        if expected is not None and expected[0] != expected[1]:
            raise IntegrityError(
                f"the stored file has {expected[0]} bytes, {expected[1]} were expected"
            )
        plain, done = await self._read()
        while not plain and not done:  # a one-segment file is verified only at its end
            more, done = await self._read()
            plain += more
        self._first = (plain, done)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        d = self._d
        first, last = d.start, d.last
        done = False
        while not done and self._pos <= last:
            if self._first is not None:
                (plain, done), self._first = self._first, None
            else:
                plain, done = await self._read()
            if not plain:
                continue
            lo, hi = self._pos, self._pos + len(plain)
            self._pos = hi
            if hi <= first:
                continue
            piece = plain[max(0, first - lo) : min(len(plain), last + 1 - lo)]
            if piece:
                yield piece
        if self._pos <= last:
            raise ShareError("the stored file is shorter than recorded")
        if not done and last == d.share.size - 1:
            # verify the tag on the final chunk: drain the rest (should be empty)
            while not done:
                _, done = await self._read()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        reading = self._reading
        if reading is not None and not reading.done():
            reading.add_done_callback(lambda _f: self._close_fh())
        else:
            self._close_fh()

    def _close_fh(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


def ciphertext_size_for(fh: Any, plaintext_size: int) -> tuple[int, int] | None:
    """(actual, expected) size of an open blob, or None when the blob cannot tell its size."""
    from backend.crypto.container import ciphertext_size
    from backend.crypto.header import PREFIX_LEN, header_length
    from backend.crypto.segments import STREAM_HEADER_SIZE

    try:
        if hasattr(fh, "size_and_prefix"):  # an object store's reader (backend/shares/s3blobs.py)
            actual, prefix = fh.size_and_prefix(PREFIX_LEN)
        else:
            actual = os.fstat(fh.fileno()).st_size
            prefix = os.pread(fh.fileno(), PREFIX_LEN, 0)
    except (AttributeError, OSError, ValueError):
        return None
    try:
        header_len = header_length(prefix) + STREAM_HEADER_SIZE
    except FerryError as exc:
        raise IntegrityError(f"not a Ferry container ({exc})") from None
    return actual, ciphertext_size(plaintext_size, header_len)
