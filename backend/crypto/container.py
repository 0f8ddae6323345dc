"""Ferry's one encryption-at-rest container: a Ferry header followed by a Tink stream.

``.ferry`` files, ciphertext-only sites and shared files all use this module. A container is

    Ferry header (crypto.header) || Tink AES256_GCM_HKDF_1MB stream (crypto.segments)

with the Ferry header as the stream's associated data (docs/format.md has the byte layout).

Two ways to drive it, both constant-memory:

* push: :func:`new_encryptor` / :func:`new_decryptor`, then ``update(chunk)`` and ``finalize()``
  — for SFTP files and HTTP bodies. A decryptor only ever returns verified plaintext;
  truncation is detected by ``finalize()``, which callers must always call.
* files: :func:`encrypt_file` / :func:`decrypt_file` (and ``encrypt_stream`` / ``decrypt_stream``
  on any blocking binary file object) read with ``readinto`` into reused buffers and write
  through a temporary file that is renamed into place only once everything verified.

An interrupted upload resumes segment-aligned: :func:`resume_point` says where, and
:meth:`Encryptor.resume` continues the identical ciphertext from the header already uploaded.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backend.crypto.header import (
    PREFIX_LEN,
    ContainerInfo,
    ParsedHeader,
    ScryptParams,
    build_header,
    header_length,
    ikm_for,
    one_secret,
    parse_header,
)
from backend.crypto.outfile import atomic_output, open_source, os_error, refuse_same_file
from backend.crypto.segments import (
    FIRST_SEGMENT_PLAINTEXT,
    SEGMENT_PLAINTEXT,
    SEGMENT_SIZE,
    STREAM_HEADER_SIZE,
    TAG_SIZE,
    SegmentCipher,
    ciphertext_capacity,
    new_stream_header,
    plaintext_capacity,
    plaintext_offset,
    segment_count,
)
from backend.errors import IntegrityError, UsageError

__all__ = [
    "FIRST_SEGMENT_PLAINTEXT",
    "SEGMENT_PLAINTEXT",
    "SEGMENT_SIZE",
    "ContainerInfo",
    "Decryptor",
    "Encryptor",
    "ResumePoint",
    "ScryptParams",
    "ciphertext_size",
    "decrypt_file",
    "encrypt_file",
    "new_decryptor",
    "new_encryptor",
    "peek_info",
    "read_info",
    "resume_point",
    "resume_point_for_plaintext",
]

Progress = Callable[[int], None]
"""Called after each segment with the plaintext bytes processed so far."""

_FINISHED = "this stream was already finalized"


def ciphertext_size(plaintext_size: int, header_len: int) -> int:
    """Total container size for ``plaintext_size`` bytes; ``header_len = len(enc.header())``."""
    if plaintext_size < 0:
        raise ValueError("negative size")
    return header_len + plaintext_size + segment_count(plaintext_size) * TAG_SIZE


def _segment_plan(
    available: int, index: int, capacity: Callable[[int], int]
) -> tuple[list[int], int]:
    """Sizes of the whole segments (from segment ``index`` on) in ``available`` buffered bytes,
    and their total. A segment is only whole once more bytes follow it: the last segment is
    held back until ``finalize`` so it can be flagged as last."""
    plan: list[int] = []
    pos = 0
    while available - pos > capacity(index):
        plan.append(capacity(index))
        pos += plan[-1]
        index += 1
    return plan, pos


@dataclass(frozen=True)
class ResumePoint:
    """Where to continue a partial upload: skip ``plaintext_offset`` bytes of the source,
    keep the first ``ciphertext_offset`` bytes already on the server, and continue with
    ``Encryptor.resume(header, ..., segments_done=segments_done)``. ``restart`` is True when
    not even the header is there: begin again with a fresh encryptor."""

    segments_done: int
    plaintext_offset: int
    ciphertext_offset: int

    @property
    def restart(self) -> bool:
        return self.ciphertext_offset == 0


def resume_point(uploaded: int, header_len: int, plaintext_size: int | None = None) -> ResumePoint:
    """The last segment boundary at or below ``uploaded`` bytes of ciphertext.

    With ``plaintext_size`` the final segment is never counted as done (it must come from
    ``finalize()``), so a complete upload resumes at its last segment.
    """
    if uploaded < header_len:
        return ResumePoint(0, 0, 0)
    ferry_len = header_len - STREAM_HEADER_SIZE
    done = (uploaded - ferry_len) // SEGMENT_SIZE
    if plaintext_size is not None:
        done = min(done, segment_count(plaintext_size) - 1)
    offset = header_len if done == 0 else ferry_len + done * SEGMENT_SIZE
    return ResumePoint(done, plaintext_offset(done), offset)


def resume_point_for_plaintext(written: int, header_len: int) -> ResumePoint:
    """The last segment boundary at or below ``written`` bytes of *plaintext* (what a
    partial decryption holds): where a download continues reading the container."""
    done = 0 if written < FIRST_SEGMENT_PLAINTEXT else (
        1 + (written - FIRST_SEGMENT_PLAINTEXT) // SEGMENT_PLAINTEXT)
    ferry_len = header_len - STREAM_HEADER_SIZE
    offset = 0 if done == 0 else ferry_len + done * SEGMENT_SIZE
    return ResumePoint(done, plaintext_offset(done), offset)


def _info(parsed: ParsedHeader) -> ContainerInfo:
    return ContainerInfo(
        version=1,
        key_source=parsed.key_source,
        name=parsed.name,
        size=parsed.size,
        header_len=len(parsed.raw) + STREAM_HEADER_SIZE,
        scrypt=parsed.scrypt,
    )


def peek_info(data: bytes) -> ContainerInfo:
    """Parse the header at the start of ``data`` WITHOUT authenticating it (for display and
    for choosing which secret to ask for). Raises IntegrityError if it is not a container."""
    length = header_length(bytes(data[:PREFIX_LEN]))
    if len(data) < length + STREAM_HEADER_SIZE:
        raise IntegrityError("encrypted file is truncated (header incomplete)")
    if data[length] != STREAM_HEADER_SIZE:
        raise IntegrityError("damaged stream header (bad length byte)")
    return _info(parse_header(bytes(data[:length])))


def read_info(path: Path) -> ContainerInfo:
    """:func:`peek_info` on the start of a file."""
    with open_source(Path(path)) as fh:
        return peek_info(fh.read(1024 + STREAM_HEADER_SIZE))


class Readable(Protocol):
    """What the stream functions read from: a binary file opened for reading (``open(p, "rb")``,
    buffered or not)."""

    def read(self, size: int = -1, /) -> bytes | None: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Writable(Protocol):
    """What they write to: a binary file, or :class:`backend.crypto.outfile.DurableWriter`."""

    def write(self, data: memoryview, /) -> int | None: ...


def _read_full(src: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless EOF comes first. Returns bytes read."""
    got = 0
    total = len(view)
    while got < total:
        n = src.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _write_all(dst: Writable, view: memoryview) -> None:
    while len(view):
        n = dst.write(view)
        if n is None:  # non-blocking raw stream would block; not supported
            raise OSError(errno.EAGAIN, "destination would block")
        view = view[n:]


class Encryptor:
    """Encrypts one stream. Write ``header()`` first, then every ``update()`` result, then
    ``finalize()``. Create with :func:`new_encryptor` or :meth:`Encryptor.resume`."""

    def __init__(
        self, ferry_header: bytes, ikm: bytes, stream_header: bytes, *,
        size: int | None, segments_done: int = 0,
    ) -> None:
        self._header = ferry_header + stream_header
        self._cipher = SegmentCipher(ikm, stream_header, ferry_header)
        self._index = segments_done
        self._consumed = plaintext_offset(segments_done)
        self._size = size
        self._buf = bytearray()
        self._finished = False
        self.info: ContainerInfo = _info(parse_header(ferry_header))

    @classmethod
    def resume(
        cls, header_bytes: bytes, *, key: bytes | None = None, passphrase: str | None = None,
        segments_done: int,
    ) -> Encryptor:
        """Continue the stream whose header (``header_bytes``, at least ``info.header_len``
        bytes of the partial upload) is already stored, from segment ``segments_done``.

        Feed it the source from ``plaintext_offset(segments_done)`` (see :func:`resume_point`);
        its output is byte-for-byte what a one-shot encryption produces from that point.
        Raises IntegrityError for a wrong secret or a damaged header.
        """
        one_secret(key, passphrase)
        info = peek_info(header_bytes)
        ferry_len = info.header_len - STREAM_HEADER_SIZE
        parsed = parse_header(bytes(header_bytes[:ferry_len]))
        ikm = ikm_for(parsed, key=key, passphrase=passphrase)
        stream_header = bytes(header_bytes[ferry_len : info.header_len])
        if segments_done < 0 or (
            info.size is not None and segments_done >= segment_count(info.size)
        ):
            raise UsageError(f"cannot resume at segment {segments_done}: outside the stream")
        return cls(parsed.raw, ikm, stream_header, size=info.size, segments_done=segments_done)

    def header(self) -> bytes:
        """Ferry header + Tink stream header: the first bytes of the container."""
        return self._header

    def _account(self, n: int) -> None:
        self._consumed += n
        if self._size is not None and self._consumed > self._size:
            self._fail(f"the source grew while encrypting (expected {self._size} bytes)")

    def _fail(self, message: str) -> None:
        self._finished = True
        raise IntegrityError(message, hint="encrypt it again once it is complete")

    def update(self, data: bytes) -> bytes:
        """Encrypt more plaintext; returns the whole segments that are ready (maybe b"")."""
        if self._finished:
            raise RuntimeError(_FINISHED)
        if not data:
            return b""
        self._account(len(data))
        buf = self._buf
        buf += data
        plan, pos = _segment_plan(len(buf), self._index, plaintext_capacity)
        if not plan:
            return b""
        out = bytearray(pos + TAG_SIZE * len(plan))
        with memoryview(buf) as src, memoryview(out) as dst:
            start = written = 0
            for n in plan:
                written += self._cipher.seal_into(
                    self._index, False, src[start : start + n], dst[written:]
                )
                start += n
                self._index += 1
        del buf[:pos]
        return bytes(out)

    def finalize(self) -> bytes:
        """The final segment (always call it, even after zero bytes of plaintext)."""
        if self._finished:
            raise RuntimeError(_FINISHED)
        self._finished = True
        if self._size is not None and self._consumed != self._size:
            raise IntegrityError(
                f"the source changed while encrypting: got {self._consumed} bytes,"
                f" expected {self._size}",
                hint="encrypt it again once it is complete",
            )
        out = bytearray(len(self._buf) + TAG_SIZE)
        with memoryview(self._buf) as src, memoryview(out) as dst:
            self._cipher.seal_into(self._index, True, src, dst)
        self._index += 1
        self._buf.clear()
        return bytes(out)

    def encrypt_stream(
        self, src: Readable, dst: Writable, *, include_header: bool = True,
        progress: Progress | None = None,
    ) -> int:
        """Encrypt everything ``src`` holds into ``dst`` and finalize, without extra copies.

        Use on a fresh (or freshly resumed, then ``include_header=False``) encryptor.
        Returns the ciphertext bytes written.
        """
        if self._finished or self._buf:
            raise RuntimeError("encrypt_stream needs an encryptor with nothing buffered")
        written = 0
        if include_header:
            _write_all(dst, memoryview(self._header))
            written += len(self._header)
        cur, nxt = bytearray(SEGMENT_PLAINTEXT), bytearray(SEGMENT_PLAINTEXT)
        out = bytearray(SEGMENT_SIZE)
        out_view = memoryview(out)
        n = _read_full(src, memoryview(cur)[: plaintext_capacity(self._index)])
        while True:
            m = _read_full(src, memoryview(nxt)[: plaintext_capacity(self._index + 1)])
            last = m == 0
            self._account(n)
            if last and self._size is not None and self._consumed != self._size:
                self.finalize()  # raises: the source changed
            k = self._cipher.seal_into(self._index, last, memoryview(cur)[:n], out_view)
            _write_all(dst, out_view[:k])
            written += k
            self._index += 1
            if progress is not None:
                progress(self._consumed)
            if last:
                self._finished = True
                return written
            cur, nxt, n = nxt, cur, m


class Decryptor:
    """Decrypts one container. Feed ``update()`` any chunks; it returns only verified
    plaintext. ``finalize()`` verifies the last segment and raises IntegrityError when the
    stream was truncated or tampered with. ``info`` is set once the header was parsed (it is
    authenticated once ``finalize()`` returned, or any plaintext came out)."""

    def __init__(self, *, key: bytes | None, passphrase: str | None) -> None:
        one_secret(key, passphrase)
        self._key = key
        self._passphrase = passphrase
        self._buf = bytearray()
        self._cipher: SegmentCipher | None = None
        self._index = 0
        self._produced = 0
        self._error: IntegrityError | None = None
        self._finished = False
        self.info: ContainerInfo | None = None

    @classmethod
    def resume(
        cls, header_bytes: bytes, *, key: bytes | None = None, passphrase: str | None = None,
        segments_done: int,
    ) -> Decryptor:
        """Continue decrypting a container whose first ``segments_done`` segments were
        already decrypted: feed it the container from
        ``resume_point_for_plaintext(...).ciphertext_offset`` on (``header_bytes``: at least
        the header). Raises IntegrityError for a wrong secret or a damaged header."""
        dec = cls(key=key, passphrase=passphrase)
        info = peek_info(header_bytes)
        if segments_done < 0 or (
            info.size is not None and segments_done >= segment_count(info.size)
        ):
            raise UsageError(f"cannot resume at segment {segments_done}: outside the stream")
        dec._buf += header_bytes[: info.header_len]
        if not dec._parse_header():  # (complete: peek_info checked the length)
            raise IntegrityError("encrypted file is truncated (header incomplete)")
        dec._index = segments_done
        dec._produced = plaintext_offset(segments_done)
        return dec

    def _guard(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise RuntimeError(_FINISHED)

    def _failed(self, err: IntegrityError) -> IntegrityError:
        self._error = err
        self._buf = bytearray()
        return err

    def _parse_header(self) -> bool:
        buf = self._buf
        if len(buf) < PREFIX_LEN:
            return False
        ferry_len = header_length(bytes(buf[:PREFIX_LEN]))
        if len(buf) < ferry_len + STREAM_HEADER_SIZE:
            return False
        parsed = parse_header(bytes(buf[:ferry_len]))
        self.info = _info(parsed)
        ikm = ikm_for(parsed, key=self._key, passphrase=self._passphrase)
        self._key = self._passphrase = None
        stream_header = bytes(buf[ferry_len : ferry_len + STREAM_HEADER_SIZE])
        self._cipher = SegmentCipher(ikm, stream_header, parsed.raw)
        del buf[: ferry_len + STREAM_HEADER_SIZE]
        return True

    def update(self, data: bytes) -> bytes:
        """More ciphertext in; the plaintext of every segment now verified out (maybe b"")."""
        self._guard()
        self._buf += data
        try:
            if self._cipher is None and not self._parse_header():
                return b""
            return self._drain()
        except IntegrityError as err:
            raise self._failed(err) from None

    def _drain(self) -> bytes:
        assert self._cipher is not None
        buf = self._buf
        plan, pos = _segment_plan(len(buf), self._index, ciphertext_capacity)
        if not plan:
            return b""
        out = bytearray(pos - TAG_SIZE * len(plan))
        with memoryview(buf) as src, memoryview(out) as dst:
            start = produced = 0
            for n in plan:
                produced += self._cipher.open_into(
                    self._index, False, src[start : start + n], dst[produced:]
                )
                start += n
                self._index += 1
        del buf[:pos]
        self._produced += len(out)
        return bytes(out)

    def finalize(self) -> bytes:
        """Verify and return the last segment; IntegrityError if truncated or tampered."""
        self._guard()
        try:
            if self._cipher is None and not self._parse_header():
                raise IntegrityError("encrypted file is truncated (header incomplete)")
            assert self._cipher is not None
            out = bytearray(max(len(self._buf) - TAG_SIZE, 0))
            with memoryview(self._buf) as src, memoryview(out) as dst:
                self._cipher.open_into(self._index, True, src, dst)
            self._check_size(self._produced + len(out))
        except IntegrityError as err:
            raise self._failed(err) from None
        self._finished = True
        self._buf = bytearray()
        return bytes(out)

    def _check_size(self, total: int) -> None:
        assert self.info is not None
        if self.info.size is not None and total != self.info.size:
            raise IntegrityError(
                f"decrypted {total} bytes but the header promises {self.info.size}",
                hint="do not use it; transfer it again",
            )

    def decrypt_stream(
        self, src: Readable, dst: Writable, *, progress: Progress | None = None
    ) -> ContainerInfo:
        """Decrypt a whole container from ``src`` into ``dst`` (fresh decryptor only).

        Only verified segments reach ``dst``, but a failure can come after some did: write to
        a temporary file and publish it only on success (as :func:`decrypt_file` does).
        """
        if self._cipher is not None or self._buf:
            raise RuntimeError("decrypt_stream needs a fresh decryptor")
        self._guard()
        try:
            prefix = src.read(PREFIX_LEN) or b""
            self.update(prefix)
            need = header_length(prefix) + STREAM_HEADER_SIZE - PREFIX_LEN
            rest = src.read(need) or b""
            if len(rest) < need:
                raise IntegrityError("encrypted file is truncated (header incomplete)")
            self.update(rest)
            cipher = self._cipher
            assert cipher is not None
            cur, nxt = bytearray(SEGMENT_SIZE), bytearray(SEGMENT_SIZE)
            out = bytearray(SEGMENT_PLAINTEXT)
            out_view = memoryview(out)
            n = _read_full(src, memoryview(cur)[: ciphertext_capacity(self._index)])
            while True:
                m = _read_full(src, memoryview(nxt)[: ciphertext_capacity(self._index + 1)])
                last = m == 0
                k = cipher.open_into(self._index, last, memoryview(cur)[:n], out_view)
                self._index += 1
                self._produced += k
                if last:
                    self._check_size(self._produced)
                _write_all(dst, out_view[:k])
                if progress is not None:
                    progress(self._produced)
                if last:
                    break
                cur, nxt, n = nxt, cur, m
        except IntegrityError as err:
            raise self._failed(err) from None
        self._finished = True
        assert self.info is not None
        return self.info


def new_encryptor(
    *, key: bytes | None = None, passphrase: str | None = None, name: str | None = None,
    size: int | None = None, scrypt: ScryptParams | None = None,
) -> Encryptor:
    """A fresh encryptor (new random salts and nonce prefix) for a 32-byte ``key`` or a
    ``passphrase`` (scrypt, default :data:`~backend.crypto.header.DEFAULT_SCRYPT`).

    ``name`` (a validated basename) and ``size`` are stored in the clear header; with
    ``size`` the encryptor refuses a source that turns out longer or shorter.
    """
    ferry_header, ikm = build_header(
        key=key, passphrase=passphrase, name=name, size=size, scrypt=scrypt
    )
    return Encryptor(ferry_header, ikm, new_stream_header(), size=size)


def new_decryptor(*, key: bytes | None = None, passphrase: str | None = None) -> Decryptor:
    """A decryptor for a container made with this 32-byte ``key`` or ``passphrase``."""
    return Decryptor(key=key, passphrase=passphrase)


# -- files ---------------------------------------------------------------------------------


def _with_path(err: IntegrityError, path: Path) -> IntegrityError:
    return IntegrityError(f"{path}: {err.message}", hint=err.hint)


def encrypt_file(
    src: Path, dst: Path, *, key: bytes | None = None, passphrase: str | None = None,
    name: str | None = None, overwrite: bool = True, scrypt: ScryptParams | None = None,
    progress: Progress | None = None,
) -> None:
    """Encrypt ``src`` into ``dst`` via a temporary file renamed into place when complete.

    The plaintext size is stored in the header; ``name`` too when given (it is readable by
    anyone holding the file). ``overwrite=False`` refuses an existing ``dst``.
    """
    src, dst = Path(src), Path(dst)
    one_secret(key, passphrase)
    refuse_same_file(src, dst)
    with open_source(src) as fin:
        size = os.fstat(fin.fileno()).st_size
        enc = new_encryptor(key=key, passphrase=passphrase, name=name, size=size, scrypt=scrypt)
        try:
            with atomic_output(dst, overwrite) as fout:
                enc.encrypt_stream(fin, fout, progress=progress)
        except IntegrityError as err:
            raise _with_path(err, src) from None
        except OSError as exc:
            raise os_error(exc, Path(exc.filename or dst), "encrypt to") from None


def decrypt_file(
    src: Path, dst: Path, *, key: bytes | None = None, passphrase: str | None = None,
    overwrite: bool = True, progress: Progress | None = None,
) -> ContainerInfo:
    """Decrypt ``src`` into ``dst``; nothing appears under ``dst`` unless every segment
    verified (the temporary file is removed on failure). Returns the verified header info."""
    src, dst = Path(src), Path(dst)
    dec = new_decryptor(key=key, passphrase=passphrase)
    refuse_same_file(src, dst)
    with open_source(src) as fin:
        try:
            with atomic_output(dst, overwrite) as fout:
                return dec.decrypt_stream(fin, fout, progress=progress)
        except IntegrityError as err:
            raise _with_path(err, src) from None
        except OSError as exc:
            raise os_error(exc, Path(exc.filename or dst), "decrypt to") from None
