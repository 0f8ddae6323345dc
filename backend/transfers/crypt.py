"""Encryption at rest for transfers: uploads encrypted as they stream, ``.ferry`` downloads
decrypted as they arrive, both through the one container (:mod:`backend.crypto.container`).

The key is a site's 32-byte key, kept in the vault as hex under ``site/<name>/encryption-key``
(see :func:`key_secret_name`); the engine gets it from its ``key_provider``. A remote file
``<name>.ferry`` is a Ferry container; its SHA-256 (what the server's ``sha256sum`` checks) is
the ciphertext's. An interrupted encrypted upload resumes at the last whole segment the server
holds (:func:`backend.crypto.container.resume_point` + :meth:`Encryptor.resume`), so the
result is byte-identical to an uninterrupted one; the already-uploaded prefix is re-derived
locally (never re-sent) to continue the running SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Any

import asyncssh

from backend.crypto.container import (
    Decryptor,
    Encryptor,
    ciphertext_size,
    new_decryptor,
    new_encryptor,
    peek_info,
    resume_point,
    resume_point_for_plaintext,
)
from backend.errors import ConfigError, IntegrityError, TransferError
from backend.remote import read_bytes
from backend.transfers.journal import FileRow
from backend.transfers.verify import TAIL, remote_tail

SUFFIX = ".ferry"
_READ = 1 << 20


def key_secret_name(site_name: str) -> str:
    """The vault entry holding a site's at-rest key (64 hex digits)."""
    return f"site/{site_name}/encryption-key"


def parse_key(text: str, site_name: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(
            f"site {site_name}: the encryption key must be 64 hex digits (32 bytes)",
            hint=f"restore your backup with: ferry vault import-key {site_name} --from FILE",
        )
    return key


class Cipher:
    """A site's at-rest key and the per-file encryptors/decryptors built from it."""

    suffix = SUFFIX

    def __init__(self, key: bytes) -> None:
        self._key = key

    def decryptor(self) -> Decryptor:
        return new_decryptor(key=self._key)

    def resume_download(self, head: bytes, checkpoint: int,
                        fd: int) -> tuple[Decryptor, int, int, Any]:
        """An interrupted decrypting download checkpointed at container offset
        ``checkpoint`` and holds plaintext in ``fd``; ``head`` is the start of the remote
        container. Returns the decryptor to continue with, the container offset to read
        from, the plaintext bytes to keep, and the running SHA-256 of the container up to
        that offset (offset 0: start over). IntegrityError if the header does not open with
        this key."""
        info = peek_info(head)
        implied = resume_point(checkpoint, info.header_len, info.size).plaintext_offset
        written = min(os.fstat(fd).st_size, implied)
        point = resume_point_for_plaintext(written, info.header_len)
        header = head[: info.header_len]
        dec = Decryptor.resume(header, key=self._key, segments_done=point.segments_done)
        digest = ciphertext_prefix_digest(header, self._key, fd, point.ciphertext_offset)
        return dec, point.ciphertext_offset, point.plaintext_offset, digest

    def size_of(self, plain_size: int, name: str = "x") -> int:
        header = new_encryptor(key=self._key, name=name, size=plain_size).header()
        return ciphertext_size(plain_size, len(header))

    async def upload_source(self, fd: int, row: FileRow, start: int,
                            sftp: asyncssh.SFTPClient, temp: str) -> EncryptedSource:
        name = posixpath.basename(row.src.rstrip("/")) or None
        size = row.size
        if start > 0:
            try:
                async with sftp.open(temp, "rb", block_size=0) as fh:
                    head = await read_bytes(fh, min(start, 64 * 1024), 0)
                info = peek_info(head)
                point = resume_point(start, info.header_len, size)
                if not point.restart:
                    header = head[: info.header_len]
                    enc = Encryptor.resume(header, key=self._key,
                                           segments_done=point.segments_done)
                    src = EncryptedSource(enc, fd, size, point.ciphertext_offset,
                                          point.plaintext_offset, info.header_len)
                    src.resume_from(header, self._key)
                    return src
            except (IntegrityError, asyncssh.Error, ValueError):
                pass  # unreadable partial header: start over
        enc = new_encryptor(key=self._key, name=name, size=size)
        return EncryptedSource(enc, fd, size, 0, 0, len(enc.header()))


def ciphertext_prefix_digest(header: bytes, key: bytes, fd: int, length: int) -> Any:
    """SHA-256 (running) of the first ``length`` bytes of the container whose plaintext
    starts ``fd``, re-derived by encrypting it again: segment encryption is deterministic
    for a given header, so this is byte for byte what the server holds (an interrupted
    upload or download continues its checksum without moving those bytes again)."""
    regen = Encryptor.resume(header, key=key, segments_done=0)
    digest = hashlib.sha256(regen.header()[:length])
    want = length - len(regen.header())
    got, pos, padded = 0, 0, False
    while got < want:
        chunk = os.pread(fd, _READ, pos)
        if not chunk:
            if padded:
                raise TransferError("the local copy is shorter than its recorded progress")
            # the plaintext ends exactly at a segment boundary: the encryptor holds that last
            # segment back (it might be the final one); one more byte releases it as a
            # middle segment, and nothing of the byte's own segment is used
            chunk, padded = b"\0", True
        pos += len(chunk)
        out = regen.update(chunk)
        take = out[: want - got]
        digest.update(take)
        got += len(take)
    return digest


class EncryptedSource:
    """Ciphertext of a local file produced in order, ``take(n)`` bytes at a time."""

    def __init__(self, enc: Encryptor, fd: int, plain_size: int, start: int, plain_pos: int,
                 header_len: int) -> None:
        self._enc = enc
        self._fd = fd
        self._plain_size = plain_size
        self._plain_pos = plain_pos
        self.start = start
        self.total = ciphertext_size(plain_size, header_len)
        self._buf = bytearray(enc.header() if start == 0 else b"")
        self._pos = 0
        self._finished = False
        self._tail = bytearray()
        self._prefix: Any = hashlib.sha256()

    def resume_from(self, header: bytes, key: bytes) -> None:
        """Re-derive the ciphertext already on the server (to continue the SHA-256)."""
        self._prefix = ciphertext_prefix_digest(header, key, self._fd, self.start)

    async def prefix_digest(self) -> Any:
        return self._prefix

    def _fill(self, need: int) -> None:
        while len(self._buf) - self._pos < need and not self._finished:
            left = self._plain_size - self._plain_pos
            if left > 0:
                chunk = os.pread(self._fd, min(_READ, left), self._plain_pos)
                if not chunk:
                    raise TransferError("the local file shrank while uploading")
                self._plain_pos += len(chunk)
                self._buf += self._enc.update(chunk)
            else:
                self._buf += self._enc.finalize()
                self._finished = True
        if self._pos > (8 << 20):
            del self._buf[: self._pos]
            self._pos = 0

    def take(self, n: int) -> bytes:
        self._fill(n)
        data = bytes(self._buf[self._pos : self._pos + n])
        if len(data) != n:
            raise TransferError("the local file changed while uploading")
        self._pos += n
        self._tail += data
        if len(self._tail) > 2 * TAIL:
            del self._tail[: len(self._tail) - TAIL]
        return data

    async def tail_matches(self, sftp: asyncssh.SFTPClient, path: str) -> bool:
        want = bytes(self._tail[-TAIL:])
        if not want:
            return True
        got = await remote_tail(sftp, path, self.total)
        return got[-len(want):] == want
