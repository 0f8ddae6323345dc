"""Tink's streaming AEAD ``AES256_GCM_HKDF_1MB`` segment layer, on ``cryptography``'s AESGCM.

Wire format (identical to Tink's AesGcmHkdfStreaming with ciphertext offset 0):

* stream header: ``0x28`` (header length 40) || 32-byte salt || 7-byte nonce prefix;
* segment key: HKDF-SHA256(ikm, salt=salt, info=associated data), 32 bytes;
* segment *i*: AES-256-GCM with nonce = prefix || i (4 bytes big-endian) || last (1 byte: 1 for
  the final segment, else 0), no per-segment associated data, 16-byte tag appended;
* every ciphertext segment is 1 MiB except the first, shortened by the 40-byte stream header,
  and the last, which may be shorter (down to the bare tag for an empty plaintext).

This module owns only that arithmetic and the per-segment seal/open; buffering lives in
:mod:`backend.crypto.container`.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.errors import IntegrityError

SEGMENT_SIZE = 1 << 20
"""Ciphertext bytes per full segment (Tink's 1MB template)."""
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
STREAM_HEADER_SIZE = 1 + SALT_SIZE + NONCE_PREFIX_SIZE  # 40
SEGMENT_PLAINTEXT = SEGMENT_SIZE - TAG_SIZE
"""Plaintext bytes per full segment (every segment but the first and the last)."""
FIRST_SEGMENT_PLAINTEXT = SEGMENT_PLAINTEXT - STREAM_HEADER_SIZE
"""Plaintext bytes in a full first segment (shortened by the 40-byte stream header)."""
MAX_SEGMENTS = 1 << 32


def plaintext_capacity(index: int) -> int:
    """Plaintext bytes segment ``index`` holds when it is full."""
    return FIRST_SEGMENT_PLAINTEXT if index == 0 else SEGMENT_PLAINTEXT


def ciphertext_capacity(index: int) -> int:
    """Ciphertext bytes of segment ``index`` when it is full."""
    return plaintext_capacity(index) + TAG_SIZE


def segment_count(plaintext_size: int) -> int:
    """How many segments a plaintext of this size becomes (at least one)."""
    if plaintext_size <= FIRST_SEGMENT_PLAINTEXT:
        return 1
    rest = plaintext_size - FIRST_SEGMENT_PLAINTEXT
    return 1 + -(-rest // SEGMENT_PLAINTEXT)


def plaintext_offset(segments: int) -> int:
    """Plaintext bytes covered by the first ``segments`` full segments."""
    if segments <= 0:
        return 0
    return FIRST_SEGMENT_PLAINTEXT + (segments - 1) * SEGMENT_PLAINTEXT


def payload_offset(segments: int) -> int:
    """Stream bytes (Tink header included) covered by the first ``segments`` full segments."""
    if segments <= 0:
        return 0
    return segments * SEGMENT_SIZE


def new_stream_header() -> bytes:
    return bytes([STREAM_HEADER_SIZE]) + secrets.token_bytes(SALT_SIZE + NONCE_PREFIX_SIZE)


class SegmentCipher:
    """Seals and opens the segments of one stream (one salt, one nonce prefix)."""

    def __init__(self, ikm: bytes, stream_header: bytes, associated_data: bytes) -> None:
        if len(stream_header) != STREAM_HEADER_SIZE or stream_header[0] != STREAM_HEADER_SIZE:
            raise IntegrityError("damaged stream header (bad length byte)")
        salt = stream_header[1 : 1 + SALT_SIZE]
        self._prefix = bytes(stream_header[1 + SALT_SIZE :])
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                   info=associated_data).derive(ikm)
        self._aead = AESGCM(key)

    def _nonce(self, index: int, last: bool) -> bytes:
        if not 0 <= index < MAX_SEGMENTS:
            raise IntegrityError("stream too long: more than 2**32 segments")
        return self._prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")

    def seal_into(self, index: int, last: bool, plaintext: memoryview, out: memoryview) -> int:
        """Encrypt one segment into ``out`` (at least len(plaintext)+16). Returns bytes written."""
        n = len(plaintext) + TAG_SIZE
        self._aead.encrypt_into(self._nonce(index, last), plaintext, None, out[:n])
        return n

    def open_into(self, index: int, last: bool, ciphertext: memoryview, out: memoryview) -> int:
        """Verify and decrypt one segment into ``out``. Returns plaintext bytes written.

        Raises :class:`IntegrityError` if the segment is damaged, out of place, or (for
        ``last``) not really the final one; ``out`` then holds nothing the caller may use.
        """
        if len(ciphertext) < TAG_SIZE:
            raise IntegrityError("encrypted file is truncated (last segment incomplete)")
        n = len(ciphertext) - TAG_SIZE
        try:
            self._aead.decrypt_into(self._nonce(index, last), ciphertext, None, out[:n])
        except InvalidTag:
            where = "last segment" if last else "segment"
            raise IntegrityError(
                f"encrypted file is truncated, damaged or was tampered with"
                f" ({where} {index} failed verification)",
                hint="do not use it; transfer it again",
            ) from None
        return n
