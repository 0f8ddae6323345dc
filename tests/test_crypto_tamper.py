"""Tampering, truncation and wrong secrets are IntegrityErrors and never yield plaintext;
decrypt_file leaves nothing under the final name (nor a temp file) when they happen."""

from __future__ import annotations

import functools
import itertools
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.crypto.container import (
    FIRST_SEGMENT_PLAINTEXT,
    SEGMENT_PLAINTEXT,
    SEGMENT_SIZE,
    ScryptParams,
    decrypt_file,
    new_decryptor,
    new_encryptor,
    peek_info,
)
from backend.errors import IntegrityError

KEY = bytes(range(100, 132))
FAST = ScryptParams(log2_n=14, r=8, p=1)
DATA = bytes(i % 251 for i in range(FIRST_SEGMENT_PLAINTEXT + 2 * SEGMENT_PLAINTEXT + 1000))


@functools.cache
def sealed() -> tuple[bytes, int]:
    """A 4-segment container over DATA, and its header length."""
    enc = new_encryptor(key=KEY, name="case.zip", size=len(DATA))
    blob = enc.header() + enc.update(DATA) + enc.finalize()
    return blob, len(enc.header())


def segments(blob: bytes, header_len: int) -> tuple[bytes, list[bytes]]:
    """Split a container into its headers and its ciphertext segments."""
    ferry_len = header_len - 40
    cuts = [header_len, *range(ferry_len + SEGMENT_SIZE, len(blob), SEGMENT_SIZE), len(blob)]
    return blob[:header_len], [blob[a:b] for a, b in itertools.pairwise(cuts)]


def decrypt_all(blob: bytes, **secret) -> bytes:
    if not secret:
        secret = {"key": KEY}
    dec = new_decryptor(**secret)
    return dec.update(blob) + dec.finalize()


def assert_refused(blob: bytes, match: str | None = None, **secret) -> IntegrityError:
    with pytest.raises(IntegrityError, match=match) as caught:
        decrypt_all(blob, **secret)
    return caught.value


def test_intact_container_decrypts() -> None:
    blob, header_len = sealed()
    assert decrypt_all(blob) == DATA
    assert len(segments(blob, header_len)[1]) == 4


@pytest.mark.parametrize("cut", ["segment1", "segment2", "segment3", "mid", "tag", "header"])
def test_truncation_is_detected_including_at_segment_boundaries(cut: str) -> None:
    blob, header_len = sealed()
    ferry_len = header_len - 40
    at = {
        "segment1": ferry_len + SEGMENT_SIZE,  # exactly after segment 0
        "segment2": ferry_len + 2 * SEGMENT_SIZE,
        "segment3": ferry_len + 3 * SEGMENT_SIZE,  # only the last segment missing
        "mid": ferry_len + SEGMENT_SIZE + 500,
        "tag": len(blob) - 1,
        "header": header_len - 1,
    }[cut]
    err = assert_refused(blob[:at])
    assert "truncated" in err.message


def test_empty_plaintext_truncated_to_its_header_is_detected() -> None:
    enc = new_encryptor(key=KEY)
    blob = enc.header() + enc.finalize()
    assert decrypt_all(blob) == b""
    assert_refused(blob[: len(enc.header())], "truncated")


def test_reordered_segments_are_detected() -> None:
    blob, header_len = sealed()
    head, segs = segments(blob, header_len)
    assert_refused(head + segs[0] + segs[2] + segs[1] + segs[3], "segment 1 failed")


def test_duplicated_segment_is_detected() -> None:
    blob, header_len = sealed()
    head, segs = segments(blob, header_len)
    assert_refused(head + segs[0] + segs[1] + segs[1] + segs[2] + segs[3], "segment 2 failed")


def test_dropped_middle_segment_is_detected() -> None:
    blob, header_len = sealed()
    head, segs = segments(blob, header_len)
    assert_refused(head + segs[0] + segs[2] + segs[3], "failed verification")


def test_appended_bytes_are_detected() -> None:
    blob, _ = sealed()
    assert_refused(blob + b"\x00", "failed verification")
    assert_refused(blob + blob[-SEGMENT_SIZE:], "failed verification")


def test_segment_from_another_stream_with_the_same_key_is_refused() -> None:
    blob, header_len = sealed()
    other, _ = sealed.__wrapped__()
    head, segs = segments(blob, header_len)
    _, other_segs = segments(other, header_len)
    assert_refused(head + segs[0] + other_segs[1] + segs[2] + segs[3], "segment 1 failed")


def test_changed_stored_name_is_detected() -> None:
    blob, _ = sealed()
    forged = blob.replace(b"case.zip", b"evil.zip", 1)
    assert peek_info(forged).name == "evil.zip"  # unauthenticated peek sees the change...
    assert_refused(forged, "segment 0 failed")  # ...and decryption refuses it


def test_changed_size_field_is_detected() -> None:
    blob, _ = sealed()
    size_at = blob.index(struct.pack(">Q", len(DATA)))
    forged = blob[:size_at] + struct.pack(">Q", 5) + blob[size_at + 8 :]
    assert_refused(forged)


def test_wrong_key_and_wrong_passphrase_are_reported_as_such() -> None:
    blob, _ = sealed()
    assert_refused(blob, "wrong key", key=bytes(32))
    enc = new_encryptor(passphrase="right one", scrypt=FAST)
    pblob = enc.header() + enc.update(b"phi") + enc.finalize()
    assert_refused(pblob, "wrong passphrase", passphrase="wrong one")
    assert_refused(pblob, "encrypted with a passphrase", key=KEY)
    assert_refused(blob, "encrypted with a key file", passphrase="right one")
    assert decrypt_all(pblob, passphrase="right one") == b"phi"


@pytest.mark.parametrize(
    ("log2_n", "r", "p"), [(40, 8, 1), (21, 8, 1), (17, 255, 1), (17, 8, 200), (3, 8, 1)]
)
def test_absurd_scrypt_parameters_are_refused_before_deriving(log2_n: int, r: int, p: int) -> None:
    enc = new_encryptor(passphrase="pw", scrypt=FAST)
    blob = bytearray(enc.header() + enc.finalize())
    assert blob[13:16] == bytes([14, 8, 1])  # log2_n, r, p (docs/format.md)
    blob[13:16] = bytes([log2_n, r, p])
    err = assert_refused(bytes(blob), "refusing scrypt parameters", passphrase="pw")
    assert "hostile" in err.message


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [(0, 0x46 ^ 1, "not a Ferry"), (8, 2, "version 2"), (9, 0xFF, "impossible length"),
     (11, 9, "key source"), (12, 0x80, "unknown flags")],
)
def test_damaged_header_fields_are_named(offset: int, value: int, match: str) -> None:
    blob = bytearray(sealed()[0])
    blob[offset] = value
    assert_refused(bytes(blob), match)


def _flip(blob: bytes, bit: int) -> bytes:
    flipped = bytearray(blob)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@example(data=None)
def test_any_flipped_bit_is_an_integrity_error_without_plaintext(data) -> None:
    blob, header_len = sealed()
    if data is None:  # also sweep every bit of the headers once
        positions = range(header_len * 8)
    else:
        positions = [data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")]
    for bit in positions:
        dec = new_decryptor(key=KEY)
        released = b""
        flipped = _flip(blob, bit)
        with pytest.raises(IntegrityError):
            for i in range(0, len(flipped), 300_000):
                released += dec.update(flipped[i : i + 300_000])
            released += dec.finalize()
        # nothing from the damaged segment or after it ever came out
        damaged_segment = max(0, (bit // 8 - (header_len - 40)) // SEGMENT_SIZE)
        if bit // 8 < header_len:
            assert released == b""
        else:
            ok_bytes = 0 if damaged_segment == 0 else (
                FIRST_SEGMENT_PLAINTEXT + (damaged_segment - 1) * SEGMENT_PLAINTEXT)
            assert released == DATA[: len(released)] and len(released) <= ok_bytes


@pytest.mark.parametrize("where", ["first", "last"])
def test_decrypt_file_leaves_no_output_and_no_temp_on_tampering(tmp_path: Path, where: str) -> None:
    blob, header_len = sealed()
    pos = header_len + 10 if where == "first" else len(blob) - 5
    src = tmp_path / "case.zip.ferry"
    src.write_bytes(_flip(blob, pos * 8))
    out = tmp_path / "case.zip"
    with pytest.raises(IntegrityError, match=r"case\.zip\.ferry"):
        decrypt_file(src, out, key=KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.zip.ferry"]


def test_decrypt_file_wrong_key_and_truncation_leave_existing_output_untouched(
    tmp_path: Path,
) -> None:
    blob, header_len = sealed()
    src = tmp_path / "in.ferry"
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous version")
    src.write_bytes(blob)
    with pytest.raises(IntegrityError, match="wrong key"):
        decrypt_file(src, out, key=os.urandom(32))
    src.write_bytes(blob[: header_len - 40 + 3 * SEGMENT_SIZE])
    with pytest.raises(IntegrityError, match="truncated"):
        decrypt_file(src, out, key=KEY)
    assert out.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ferry", "out.bin"]


def test_decryptor_stays_failed_after_an_error() -> None:
    blob, _ = sealed()
    dec = new_decryptor(key=KEY)
    with pytest.raises(IntegrityError):
        dec.update(_flip(blob, 8 * 200))
    with pytest.raises(IntegrityError):
        dec.update(blob)
    with pytest.raises(IntegrityError):
        dec.finalize()


def test_not_a_container_at_all_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "plain.txt"
    src.write_bytes(os.urandom(5000))
    with pytest.raises(IntegrityError, match="not a Ferry encrypted file"):
        decrypt_file(src, tmp_path / "out", key=KEY)
    assert not (tmp_path / "out").exists()
