"""Interoperability with Google Tink's own AES256_GCM_HKDF_1MB streaming AEAD, both ways.

Tink (the ``tink`` package, C++ underneath) is the reference: Ferry must decrypt what Tink
writes with a Ferry header as associated data, and Tink must decrypt Ferry's payload.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
import tink
from tink import cleartext_keyset_handle, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from backend.crypto.container import (
    FIRST_SEGMENT_PLAINTEXT,
    SEGMENT_PLAINTEXT,
    decrypt_file,
    encrypt_file,
    new_decryptor,
    new_encryptor,
    read_info,
)
from backend.crypto.segments import STREAM_HEADER_SIZE
from backend.errors import IntegrityError

streaming_aead.register()

TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
SIZES = [
    0,
    1,
    FIRST_SEGMENT_PLAINTEXT - 1,
    FIRST_SEGMENT_PLAINTEXT,  # exactly one (header-shortened) segment
    FIRST_SEGMENT_PLAINTEXT + 1,
    SEGMENT_PLAINTEXT,  # one full segment's worth of plaintext
    FIRST_SEGMENT_PLAINTEXT + SEGMENT_PLAINTEXT,  # exactly two segments
    FIRST_SEGMENT_PLAINTEXT + 4 * SEGMENT_PLAINTEXT + 4321,  # several
]


class _KeepOpen(io.BytesIO):
    """Tink closes the destination when its stream closes; keep the bytes readable."""

    def close(self) -> None:
        pass


def tink_generated_key() -> tuple[tink.KeysetHandle, bytes]:
    """A keyset made by Tink from its template, and the raw 32-byte key inside it."""
    template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    handle = tink.new_keyset_handle(template)
    buf = io.BytesIO()
    cleartext_keyset_handle.write(tink.BinaryKeysetWriter(buf), handle)
    keyset = tink_pb2.Keyset.FromString(buf.getvalue())
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(
        keyset.key[0].key_data.value
    )
    assert key.params.ciphertext_segment_size == 1 << 20
    assert key.params.derived_key_size == 32
    assert key.params.hkdf_hash_type == common_pb2.SHA256
    return handle, key.key_value


def keyset_for(raw_key: bytes) -> tink.KeysetHandle:
    """A Tink keyset holding Ferry's 32-byte key with the AES256_GCM_HKDF_1MB parameters."""
    params = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
        ciphertext_segment_size=1 << 20, derived_key_size=32, hkdf_hash_type=common_pb2.SHA256
    )
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0, params=params, key_value=raw_key
    )
    keyset = tink_pb2.Keyset(primary_key_id=7)
    entry = keyset.key.add()
    entry.key_data.type_url = TYPE_URL
    entry.key_data.value = key.SerializeToString()
    entry.key_data.key_material_type = tink_pb2.KeyData.SYMMETRIC
    entry.status = tink_pb2.ENABLED
    entry.key_id = 7
    entry.output_prefix_type = tink_pb2.RAW
    return cleartext_keyset_handle.read(tink.BinaryKeysetReader(keyset.SerializeToString()))


def tink_encrypt(handle: tink.KeysetHandle, data: bytes, associated: bytes) -> bytes:
    out = _KeepOpen()
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with primitive.new_encrypting_stream(out, associated) as stream:
        stream.write(data)
    return out.getvalue()


def tink_decrypt(handle: tink.KeysetHandle, payload: bytes, associated: bytes) -> bytes:
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with primitive.new_decrypting_stream(io.BytesIO(payload), associated) as stream:
        return stream.read()


@pytest.mark.parametrize("size", SIZES)
def test_ferry_decrypts_what_tink_encrypts(size: int) -> None:
    handle, raw_key = tink_generated_key()
    data = os.urandom(size)
    enc = new_encryptor(key=raw_key, name="from-tink.bin", size=size)
    ferry_header = enc.header()[:-STREAM_HEADER_SIZE]
    payload = tink_encrypt(handle, data, ferry_header)
    dec = new_decryptor(key=raw_key)
    assert dec.update(ferry_header + payload) + dec.finalize() == data


@pytest.mark.parametrize("size", SIZES)
def test_tink_decrypts_what_ferry_encrypts(size: int) -> None:
    raw_key = os.urandom(32)
    data = os.urandom(size)
    enc = new_encryptor(key=raw_key, size=size)
    header = enc.header()
    payload = header[-STREAM_HEADER_SIZE:] + enc.update(data) + enc.finalize()
    assert tink_decrypt(keyset_for(raw_key), payload, header[:-STREAM_HEADER_SIZE]) == data


def test_tink_refuses_ferry_payload_under_a_changed_header() -> None:
    raw_key = os.urandom(32)
    enc = new_encryptor(key=raw_key, name="a.zip")
    header = enc.header()
    payload = header[-STREAM_HEADER_SIZE:] + enc.update(b"secret") + enc.finalize()
    swapped = new_encryptor(key=raw_key, name="b.zip").header()[:-STREAM_HEADER_SIZE]
    with pytest.raises(tink.TinkError):
        tink_decrypt(keyset_for(raw_key), payload, swapped)


def test_100_mib_file_interoperates_both_ways(tmp_path: Path) -> None:
    raw_key = os.urandom(32)
    chunk = os.urandom(1 << 20)
    plain = tmp_path / "big.bin"
    with plain.open("wb") as fh:
        for i in range(100):
            fh.write(chunk[i:] + chunk[:i])
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()

    # Ferry file -> Tink
    sealed = tmp_path / "big.bin.ferry"
    encrypt_file(plain, sealed, key=raw_key, name="big.bin")
    info = read_info(sealed)
    blob = sealed.read_bytes()
    ferry_len = info.header_len - STREAM_HEADER_SIZE
    from_ferry = tink_decrypt(keyset_for(raw_key), blob[ferry_len:], blob[:ferry_len])
    assert hashlib.sha256(from_ferry).hexdigest() == digest
    del from_ferry

    # Tink -> Ferry file
    tink_payload = tink_encrypt(keyset_for(raw_key), plain.read_bytes(), blob[:ferry_len])
    from_tink = tmp_path / "from-tink.ferry"
    from_tink.write_bytes(blob[:ferry_len] + tink_payload)
    del blob, tink_payload
    out = tmp_path / "out.bin"
    assert decrypt_file(from_tink, out, key=raw_key).size == 100 << 20
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_ferry_refuses_tink_output_under_the_wrong_key() -> None:
    handle, raw_key = tink_generated_key()
    enc = new_encryptor(key=raw_key)
    ferry_header = enc.header()[:-STREAM_HEADER_SIZE]
    payload = tink_encrypt(handle, b"x" * 100, ferry_header)
    dec = new_decryptor(key=os.urandom(32))
    with pytest.raises(IntegrityError, match="wrong key"):
        dec.update(ferry_header + payload)
