"""The encryption container round-trips any size through every API, resumes identically,
and key files are created safely."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from backend.crypto.container import (
    FIRST_SEGMENT_PLAINTEXT,
    SEGMENT_PLAINTEXT,
    SEGMENT_SIZE,
    Encryptor,
    ScryptParams,
    ciphertext_size,
    decrypt_file,
    encrypt_file,
    new_decryptor,
    new_encryptor,
    peek_info,
    read_info,
    resume_point,
)
from backend.crypto.keys import generate_key_file, read_key_file
from backend.errors import ConfigError, IntegrityError, UnsafeNameError, UsageError

FAST = ScryptParams(log2_n=14, r=8, p=1)
KEY = bytes(range(32))
SIZES = [
    0,
    1,
    FIRST_SEGMENT_PLAINTEXT - 1,
    FIRST_SEGMENT_PLAINTEXT,
    FIRST_SEGMENT_PLAINTEXT + 1,
    FIRST_SEGMENT_PLAINTEXT + SEGMENT_PLAINTEXT,
    FIRST_SEGMENT_PLAINTEXT + 2 * SEGMENT_PLAINTEXT + 12345,
]


def push_encrypt(enc: Encryptor, data: bytes, chunk: int) -> bytes:
    parts = [enc.header()]
    parts += [enc.update(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    parts.append(enc.finalize())
    return b"".join(parts)


def push_decrypt(blob: bytes, chunk: int, **secret) -> bytes:
    dec = new_decryptor(**secret)
    parts = [dec.update(blob[i : i + chunk]) for i in range(0, len(blob), chunk)]
    parts.append(dec.finalize())
    return b"".join(parts)


@pytest.mark.parametrize("size", SIZES)
def test_push_api_round_trips_every_segment_boundary(size: int) -> None:
    data = os.urandom(size)
    enc = new_encryptor(key=KEY, name="scan.zip", size=size)
    blob = push_encrypt(enc, data, 700_001)
    assert len(blob) == ciphertext_size(size, len(enc.header()))
    assert size < 32 or data[:32] not in blob  # no plaintext in clear
    assert push_decrypt(blob, 65_537, key=KEY) == data
    assert push_decrypt(blob, len(blob) + 1, key=KEY) == data


def test_tiny_chunks_and_single_byte_feeds_give_the_same_plaintext() -> None:
    data = os.urandom(FIRST_SEGMENT_PLAINTEXT + 10)
    blob = push_encrypt(new_encryptor(key=KEY), data, 1 << 20)
    dec = new_decryptor(key=KEY)
    out = bytearray()
    out += dec.update(blob[:5])  # less than the header prefix
    assert dec.info is None
    out += dec.update(blob[5:200])
    assert dec.info is not None and dec.info.key_source == "key"
    for i in range(200, len(blob), 4093):
        out += dec.update(blob[i : i + 4093])
    out += dec.finalize()
    assert bytes(out) == data


def test_update_only_returns_whole_segments_and_holds_back_the_last() -> None:
    enc = new_encryptor(key=KEY)
    assert enc.update(b"x" * FIRST_SEGMENT_PLAINTEXT) == b""  # might be the last segment
    first = enc.update(b"y")
    assert len(first) == FIRST_SEGMENT_PLAINTEXT + 16
    assert len(enc.finalize()) == 1 + 16


def test_passphrase_container_records_scrypt_and_decrypts(tmp_path: Path) -> None:
    enc = new_encryptor(passphrase="correct horse", name="a.zip", size=3, scrypt=FAST)
    blob = push_encrypt(enc, b"abc", 10)
    info = peek_info(blob)
    assert (info.key_source, info.name, info.size, info.scrypt) == ("passphrase", "a.zip", 3, FAST)
    assert push_decrypt(blob, 7, passphrase="correct horse") == b"abc"


def test_passphrase_is_unicode_normalised() -> None:
    composed, decomposed = "caf\u00e9-pass", "cafe\u0301-pass"
    blob = push_encrypt(new_encryptor(passphrase=composed, scrypt=FAST), b"data", 10)
    assert push_decrypt(blob, 100, passphrase=decomposed) == b"data"


def test_stream_apis_match_push_apis_for_files(tmp_path: Path) -> None:
    data = os.urandom(2 * SEGMENT_SIZE + 99)
    src = tmp_path / "study.zip"
    src.write_bytes(data)
    dst = tmp_path / "study.zip.ferry"
    seen: list[int] = []
    encrypt_file(src, dst, key=KEY, name="study.zip", progress=seen.append)
    assert seen[-1] == len(data) and seen == sorted(seen)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    blob = dst.read_bytes()
    assert push_decrypt(blob, 1 << 20, key=KEY) == data
    info = read_info(dst)
    assert (info.name, info.size) == ("study.zip", len(data))
    out = tmp_path / "out.zip"
    got = decrypt_file(dst, out, key=KEY)
    assert out.read_bytes() == data and got.size == len(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "study.zip", "study.zip.ferry"]


def test_file_functions_refuse_to_clobber_or_write_onto_the_source(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello")
    dst = tmp_path / "a.bin.ferry"
    dst.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="already exists"):
        encrypt_file(src, dst, key=KEY, overwrite=False)
    assert dst.read_bytes() == b"keep me"
    with pytest.raises(UsageError, match="own source"):
        encrypt_file(src, src, key=KEY)
    assert src.read_bytes() == b"hello"
    encrypt_file(src, dst, key=KEY)  # overwrite allowed by default
    assert decrypt_file(dst, tmp_path / "b.bin", key=KEY).size == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.bin.ferry", "b.bin"]


def test_unsafe_stored_name_is_refused_when_encrypting() -> None:
    with pytest.raises(UnsafeNameError):
        new_encryptor(key=KEY, name="../etc/passwd")


def test_exactly_one_secret_of_the_right_length_is_required() -> None:
    with pytest.raises(UsageError):
        new_encryptor()
    with pytest.raises(UsageError):
        new_encryptor(key=KEY, passphrase="x")
    with pytest.raises(UsageError, match="32 bytes"):
        new_encryptor(key=b"short")
    with pytest.raises(UsageError, match="empty"):
        new_encryptor(passphrase="", scrypt=FAST)


def test_source_that_changes_size_while_encrypting_is_refused() -> None:
    enc = new_encryptor(key=KEY, size=10)
    enc.header()
    enc.update(b"12345")
    with pytest.raises(IntegrityError, match="changed while encrypting"):
        enc.finalize()
    enc = new_encryptor(key=KEY, size=3)
    with pytest.raises(IntegrityError, match="grew"):
        enc.encrypt_stream(io.BytesIO(b"abcdef"), io.BytesIO())


@pytest.mark.parametrize("secret", [{"key": KEY}, {"passphrase": "resume me"}])
def test_resumed_stream_equals_one_shot_stream_byte_for_byte(secret: dict) -> None:
    data = os.urandom(FIRST_SEGMENT_PLAINTEXT + 2 * SEGMENT_PLAINTEXT + 777)
    enc = new_encryptor(**secret, name="case.zip", size=len(data), scrypt=FAST)
    one_shot = push_encrypt(enc, data, 1 << 20)
    header_len = len(enc.header())
    uploads = [0, header_len - 1, header_len, header_len + 5, SEGMENT_SIZE + 3,
               2 * SEGMENT_SIZE + header_len, 3 * SEGMENT_SIZE, len(one_shot)]
    for uploaded in uploads:
        point = resume_point(uploaded, header_len, len(data))
        if point.restart:
            assert uploaded < header_len
            continue
        assert point.ciphertext_offset <= uploaded
        server_has = one_shot[: point.ciphertext_offset]
        resumed = Encryptor.resume(one_shot[:header_len], **secret,
                                   segments_done=point.segments_done)
        rest = data[point.plaintext_offset :]
        tail = resumed.update(rest[:1000]) + resumed.update(rest[1000:]) + resumed.finalize()
        assert server_has + tail == one_shot, uploaded
    # the stream fast path resumes too
    point = resume_point(2 * SEGMENT_SIZE + 100, header_len, len(data))
    resumed = Encryptor.resume(one_shot, **secret, segments_done=point.segments_done)
    out = io.BytesIO()
    resumed.encrypt_stream(io.BytesIO(data[point.plaintext_offset :]), out, include_header=False)
    assert one_shot[: point.ciphertext_offset] + out.getvalue() == one_shot


def test_resume_with_the_wrong_secret_is_refused() -> None:
    enc = new_encryptor(key=KEY, size=10)
    with pytest.raises(IntegrityError, match="wrong key"):
        Encryptor.resume(enc.header(), key=bytes(32), segments_done=0)


def test_generated_key_file_is_private_random_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_key_file(path)
    assert len(key) == 32 and key != bytes(32)
    generate_key_file(tmp_path / "other.key")
    assert read_key_file(tmp_path / "other.key") != key
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_file(path)
    assert read_key_file(path) == key


@pytest.mark.parametrize("content", [b"", b"x" * 31, b"x" * 33, b"x" * 64])
def test_key_file_of_the_wrong_size_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(IntegrityError, match="expected exactly 32"):
        read_key_file(path)


def test_key_file_round_trip_through_a_container(tmp_path: Path) -> None:
    generate_key_file(tmp_path / "k")
    key = read_key_file(tmp_path / "k")
    blob = push_encrypt(new_encryptor(key=key), b"payload", 3)
    assert push_decrypt(blob, 5, key=key) == b"payload"
