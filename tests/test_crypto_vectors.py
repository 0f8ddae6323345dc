"""The committed test vectors decrypt (or are refused) with Ferry, and with an independent
reader written only from docs/format.md on top of bare primitives — so the document is
precise enough for someone else to implement."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import unicodedata
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backend.crypto.container import decrypt_file, read_info
from backend.errors import IntegrityError

VECTORS = Path(__file__).parent / "vectors"
ALL = json.loads((VECTORS / "vectors.json").read_text())


def _secret(vector: dict) -> dict:
    if "key_hex" in vector:
        return {"key": bytes.fromhex(vector["key_hex"])}
    return {"passphrase": vector["passphrase"]}


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def reference_decrypt(blob: bytes, *, key: bytes | None = None,
                      passphrase: str | None = None) -> tuple[bytes, dict]:
    """A from-the-spec reader (docs/format.md), independent of backend.crypto."""
    assert blob[:8] == b"FERRYENC" and blob[8] == 1
    (hlen,) = struct.unpack(">H", blob[9:11])
    source, flags = blob[11], blob[12]
    pos = 13
    if source == 1:
        log2_n, r, p = blob[13:16]
        assert 14 <= log2_n <= 20 and r <= 32 and p <= 16
        salt = blob[16:32]
        pos = 32
        pw = unicodedata.normalize("NFC", passphrase or "").encode()
        ikm = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(pw)
    else:
        assert source == 2 and key is not None
        ikm = key
    check = blob[pos : pos + 16]
    pos += 16
    assert _hkdf(ikm, None, b"ferry-container v1 key check", 16) == check, "wrong secret"
    meta: dict = {"ikm": ikm}
    if flags & 1:
        n = blob[pos]
        meta["name"] = blob[pos + 1 : pos + 1 + n].decode()
        pos += 1 + n
    if flags & 2:
        (meta["size"],) = struct.unpack(">Q", blob[pos : pos + 8])
        pos += 8
    assert pos == hlen
    ferry_header, stream = blob[:hlen], blob[hlen:]
    assert stream[0] == 40
    seg_key = _hkdf(ikm, stream[1:33], ferry_header, 32)
    prefix = stream[33:40]
    meta.update(segment_key=seg_key, nonce_prefix=prefix)
    aead = AESGCM(seg_key)
    segments, cursor, i = [], 40, 0
    while True:
        end = cursor + (1 << 20) - (40 if i == 0 else 0)
        chunk = stream[cursor:end]
        last = end >= len(stream)
        nonce = prefix + i.to_bytes(4, "big") + bytes([last])
        segments.append(aead.decrypt(nonce, chunk, None))
        if last:
            return b"".join(segments), meta
        cursor, i = end, i + 1


@pytest.mark.parametrize("vector", ALL, ids=[v["file"] for v in ALL])
def test_vector_decrypts_with_ferry(tmp_path: Path, vector: dict) -> None:
    src = tmp_path / vector["file"]
    shutil.copyfile(VECTORS / vector["file"], src)
    out = tmp_path / "plain"
    if vector["expect"] == "integrity_error":
        with pytest.raises(IntegrityError):
            decrypt_file(src, out, **_secret(vector))
        assert not out.exists()
        return
    info = decrypt_file(src, out, **_secret(vector))
    plain = out.read_bytes()
    assert hashlib.sha256(plain).hexdigest() == vector["plaintext_sha256"]
    assert len(plain) == vector["plaintext_size"] == info.size
    assert info.name == vector["name"] == read_info(src).name
    if "plaintext_hex" in vector:
        assert plain.hex() == vector["plaintext_hex"]
    if vector.get("plaintext") == "byte i is i mod 251":
        assert plain == bytes(i % 251 for i in range(len(plain)))


@pytest.mark.parametrize("vector", ALL, ids=[v["file"] for v in ALL])
def test_vector_decrypts_with_a_reader_written_from_the_spec(vector: dict) -> None:
    blob = (VECTORS / vector["file"]).read_bytes()
    if vector["expect"] == "integrity_error":
        with pytest.raises(InvalidTag):
            reference_decrypt(blob, **_secret(vector))
        return
    plain, meta = reference_decrypt(blob, **_secret(vector))
    assert hashlib.sha256(plain).hexdigest() == vector["plaintext_sha256"]
    assert meta["ikm"].hex() == vector["ikm_hex"]
    assert meta["segment_key"].hex() == vector["segment_key_hex"]
    assert meta["nonce_prefix"].hex() == vector["nonce_prefix_hex"]
    assert meta.get("name") == vector["name"]
    assert meta.get("size") == vector["plaintext_size"]


def test_vectors_cover_both_key_sources_and_a_refusal() -> None:
    assert {"key_hex" in v for v in ALL if v["expect"] == "ok"} == {True, False}
    assert any(v["expect"] == "integrity_error" for v in ALL)
    assert any(v["plaintext_size"] > 1 << 20 for v in ALL if v["expect"] == "ok")
