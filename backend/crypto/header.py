"""The Ferry container header: build, parse, and derive the keys it describes.

The header is small, versioned and in clear: magic, version, key source (scrypt parameters and
salt for a passphrase, or "raw 32-byte key"), a 16-byte key check, and optionally the original
file name and size. The whole header is the associated data of the Tink streaming-AEAD payload
that follows, so changing any byte of it makes the first segment fail verification. The exact
layout is in docs/format.md; this module is its only implementation.

Parsing never trusts the file: every length is bounded, scrypt parameters are checked against
:data:`SCRYPT_LIMITS` *before* deriving (a hostile file cannot make Ferry allocate gigabytes),
and every failure is an :class:`~backend.errors.IntegrityError`.
"""

from __future__ import annotations

import hmac
import secrets
import struct
import unicodedata
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backend.errors import IntegrityError, UsageError

MAGIC = b"FERRYENC"
VERSION = 1
KEY_SIZE = 32
KEY_CHECK_SIZE = 16
SCRYPT_SALT_SIZE = 16
MAX_NAME_BYTES = 255
MAX_HEADER_LEN = 1024
"""Upper bound a reader accepts for the Ferry header (the largest valid one is 312 bytes)."""

SOURCE_PASSPHRASE = 1
SOURCE_KEY = 2
_FLAG_NAME = 0x01
_FLAG_SIZE = 0x02

_PREFIX = struct.Struct(">8sBHBB")  # magic, version, header_len, key_source, flags
PREFIX_LEN = 11
"""Bytes a reader needs to learn the header length (magic, version, header_len)."""

_KEY_CHECK_INFO = b"ferry-container v1 key check"

KeySource = Literal["passphrase", "key"]


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: N = 2**log2_n, block size r, parallelism p. Memory is 128 * r * N bytes."""

    log2_n: int = 17
    r: int = 8
    p: int = 1


DEFAULT_SCRYPT = ScryptParams()
"""N=2**17, r=8, p=1: 128 MiB and about 0.3 s per derivation on a 2020s server core."""


@dataclass(frozen=True)
class ScryptLimits:
    """What a reader accepts from a file (and a writer may use)."""

    min_log2_n: int = 14
    max_log2_n: int = 20
    max_r: int = 32
    max_p: int = 16
    max_memory: int = 256 * 1024 * 1024  # 128 * r * N
    max_work: int = 1 << 23  # N * r * p (4x the default)


SCRYPT_LIMITS = ScryptLimits()


@dataclass(frozen=True)
class ContainerInfo:
    """What a container header says. ``header_len`` is the offset of the first segment
    (Ferry header + Tink stream header), i.e. ``len(Encryptor.header())``."""

    version: int
    key_source: KeySource
    name: str | None
    size: int | None
    header_len: int
    scrypt: ScryptParams | None = None


@dataclass(frozen=True)
class ParsedHeader:
    """A parsed Ferry header (without the Tink stream header)."""

    raw: bytes
    key_source: KeySource
    scrypt: ScryptParams | None
    scrypt_salt: bytes | None
    key_check: bytes
    name: str | None
    size: int | None


def check_scrypt(params: ScryptParams, limits: ScryptLimits = SCRYPT_LIMITS) -> None:
    """Raise :class:`IntegrityError` unless ``params`` are within ``limits``."""
    n = 1 << params.log2_n if 0 <= params.log2_n < 64 else 0
    ok = (
        limits.min_log2_n <= params.log2_n <= limits.max_log2_n
        and 1 <= params.r <= limits.max_r
        and 1 <= params.p <= limits.max_p
        and 128 * params.r * n <= limits.max_memory
        and n * params.r * params.p <= limits.max_work
    )
    if not ok:
        raise IntegrityError(
            f"refusing scrypt parameters log2(N)={params.log2_n} r={params.r} p={params.p}:"
            " outside Ferry's limits (damaged or hostile file)"
        )


def normalize_passphrase(passphrase: str) -> bytes:
    """The bytes scrypt sees: UTF-8 of the NFC form, so every keyboard yields the same key."""
    if not passphrase:
        raise UsageError("the passphrase is empty")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def derive_passphrase_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    check_scrypt(params)
    kdf = Scrypt(salt=salt, length=KEY_SIZE, n=1 << params.log2_n, r=params.r, p=params.p)
    return kdf.derive(normalize_passphrase(passphrase))


def key_check(ikm: bytes) -> bytes:
    """16 bytes that let a reader tell a wrong key from a damaged payload."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_CHECK_SIZE, salt=None,
                info=_KEY_CHECK_INFO).derive(ikm)


def check_key(key: bytes | None) -> bytes:
    if key is None:
        raise UsageError("a key or a passphrase is required")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise UsageError(f"an encryption key must be exactly {KEY_SIZE} bytes, got {len(key)}")
    return key


def one_secret(key: bytes | None, passphrase: str | None) -> None:
    if (key is None) == (passphrase is None):
        raise UsageError("give exactly one of a key or a passphrase")


def build_header(
    *,
    key: bytes | None,
    passphrase: str | None,
    name: str | None,
    size: int | None,
    scrypt: ScryptParams | None = None,
) -> tuple[bytes, bytes]:
    """A fresh Ferry header and the 32-byte input key material it describes."""
    one_secret(key, passphrase)
    if passphrase is not None:
        params = scrypt or DEFAULT_SCRYPT
        try:
            check_scrypt(params)
        except IntegrityError as err:
            raise UsageError(err.message) from None
        salt = secrets.token_bytes(SCRYPT_SALT_SIZE)
        ikm = derive_passphrase_key(passphrase, salt, params)
        source = SOURCE_PASSPHRASE
        kdf_part = bytes([params.log2_n, params.r, params.p]) + salt
    else:
        ikm = check_key(key)
        source = SOURCE_KEY
        kdf_part = b""
    flags = 0
    tail = b""
    if name is not None:
        from backend.names import validate_name

        try:
            encoded = validate_name(name).encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("the file name to store is not valid UTF-8") from None
        flags |= _FLAG_NAME
        tail += bytes([len(encoded)]) + encoded
    if size is not None:
        if not 0 <= size < 1 << 64:
            raise UsageError(f"invalid plaintext size {size}")
        flags |= _FLAG_SIZE
        tail += struct.pack(">Q", size)
    body = kdf_part + key_check(ikm) + tail
    header_len = PREFIX_LEN + 2 + len(body)
    raw = _PREFIX.pack(MAGIC, VERSION, header_len, source, flags) + body
    return raw, ikm


def header_length(prefix: bytes) -> int:
    """The Ferry header's total length, from its first :data:`PREFIX_LEN` bytes."""
    if len(prefix) < PREFIX_LEN:
        raise IntegrityError("encrypted file is truncated (header incomplete)")
    if prefix[:8] != MAGIC:
        raise IntegrityError("not a Ferry encrypted file (bad magic bytes)")
    version = prefix[8]
    if version != VERSION:
        raise IntegrityError(
            f"unsupported Ferry container version {version}",
            hint="this Ferry reads version 1; the file is damaged or from a newer Ferry",
        )
    length: int = struct.unpack(">H", prefix[9:11])[0]
    if not PREFIX_LEN + 2 + KEY_CHECK_SIZE <= length <= MAX_HEADER_LEN:
        raise IntegrityError(f"damaged Ferry header (impossible length {length})")
    return length


def parse_header(raw: bytes) -> ParsedHeader:
    """Parse a complete Ferry header (exactly :func:`header_length` bytes)."""
    length = header_length(raw)
    if len(raw) != length:
        raise IntegrityError("encrypted file is truncated (header incomplete)")
    _, _, _, source, flags = _PREFIX.unpack_from(raw)
    if flags & ~(_FLAG_NAME | _FLAG_SIZE):
        raise IntegrityError(f"damaged Ferry header (unknown flags {flags:#04x})")
    pos = PREFIX_LEN + 2
    scrypt: ScryptParams | None = None
    salt: bytes | None = None

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > length:
            raise IntegrityError("damaged Ferry header (fields overrun its length)")
        chunk = raw[pos : pos + n]
        pos += n
        return chunk

    if source == SOURCE_PASSPHRASE:
        log2_n, r, p = take(3)
        scrypt = ScryptParams(log2_n, r, p)
        check_scrypt(scrypt)
        salt = take(SCRYPT_SALT_SIZE)
        kind: KeySource = "passphrase"
    elif source == SOURCE_KEY:
        kind = "key"
    else:
        raise IntegrityError(f"damaged Ferry header (unknown key source {source})")
    check = take(KEY_CHECK_SIZE)
    name: str | None = None
    if flags & _FLAG_NAME:
        name_len = take(1)[0]
        if name_len == 0:
            raise IntegrityError("damaged Ferry header (empty file name)")
        try:
            name = take(name_len).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError("damaged Ferry header (file name is not UTF-8)") from None
    size: int | None = None
    if flags & _FLAG_SIZE:
        (size,) = struct.unpack(">Q", take(8))
    if pos != length:
        raise IntegrityError("damaged Ferry header (length does not match its fields)")
    return ParsedHeader(bytes(raw), kind, scrypt, salt, check, name, size)


def ikm_for(header: ParsedHeader, *, key: bytes | None, passphrase: str | None) -> bytes:
    """The input key material for ``header`` from the caller's secret, checked.

    Raises :class:`IntegrityError` for the wrong kind of secret or a wrong one.
    """
    one_secret(key, passphrase)
    if header.key_source == "passphrase":
        if passphrase is None:
            raise IntegrityError(
                "this file was encrypted with a passphrase, not a key file",
                hint="give the passphrase instead",
            )
        assert header.scrypt is not None and header.scrypt_salt is not None
        ikm = derive_passphrase_key(passphrase, header.scrypt_salt, header.scrypt)
        what = "passphrase"
    else:
        if key is None:
            raise IntegrityError(
                "this file was encrypted with a key file, not a passphrase",
                hint="give the key file instead",
            )
        ikm = check_key(key)
        what = "key"
    if not hmac.compare_digest(key_check(ikm), header.key_check):
        raise IntegrityError(
            f"wrong {what} for this encrypted file (or its header is damaged)",
        )
    return ikm
