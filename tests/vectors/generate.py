"""Regenerate the committed container test vectors: ``.venv/bin/python -m tests.vectors.generate``.

Only needed if the format changes (it must not for version 1). Salts and nonce prefixes are
random, so regenerating changes every file: commit the new files and vectors.json together.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.crypto.container import FIRST_SEGMENT_PLAINTEXT, ScryptParams, new_encryptor
from backend.crypto.header import derive_passphrase_key, parse_header

HERE = Path(__file__).parent


def pattern(n: int) -> bytes:
    """The plaintext of the multi-segment vector: byte i is i mod 251."""
    return bytes(i % 251 for i in range(n))


def _seal(filename: str, plaintext: bytes, secret: dict, **meta) -> dict:
    scrypt = ScryptParams(14, 8, 1) if "passphrase" in secret else None
    enc = new_encryptor(**secret, scrypt=scrypt, size=len(plaintext), **meta)
    blob = enc.header() + enc.update(plaintext) + enc.finalize()
    (HERE / filename).write_bytes(blob)
    ferry_len = len(enc.header()) - 40
    parsed = parse_header(blob[:ferry_len])
    if "key" in secret:
        ikm = secret["key"]
    else:
        assert parsed.scrypt_salt is not None and parsed.scrypt is not None
        ikm = derive_passphrase_key(secret["passphrase"], parsed.scrypt_salt, parsed.scrypt)
    salt = blob[ferry_len + 1 : ferry_len + 33]
    seg_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                   info=blob[:ferry_len]).derive(ikm)
    entry = {
        "file": filename,
        "expect": "ok",
        "ferry_header_len": ferry_len,
        "ikm_hex": ikm.hex(),
        "segment_key_hex": seg_key.hex(),
        "nonce_prefix_hex": blob[ferry_len + 33 : ferry_len + 40].hex(),
        "plaintext_size": len(plaintext),
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "name": meta.get("name"),
    }
    if "key" in secret:
        entry["key_hex"] = secret["key"].hex()
    else:
        entry["passphrase"] = secret["passphrase"]
    return entry


def main() -> None:
    hello = b"Hello, Ferry!\n"
    vectors = [
        _seal("empty-key.ferry", b"", {"key": bytes(range(32))}),
        _seal("hello-passphrase.ferry", hello, {"passphrase": "correct horse battery staple"},
              name="hello.txt"),
        _seal("two-segments-key.ferry", pattern(FIRST_SEGMENT_PLAINTEXT + 100),
              {"key": bytes([0x42]) * 32}, name="pattern.bin"),
    ]
    vectors[1]["plaintext_hex"] = hello.hex()
    vectors[2]["plaintext"] = "byte i is i mod 251"
    tampered = bytearray((HERE / "hello-passphrase.ferry").read_bytes())
    tampered[-3] ^= 0x01
    (HERE / "hello-tampered.ferry").write_bytes(tampered)
    vectors.append({
        "file": "hello-tampered.ferry",
        "expect": "integrity_error",
        "passphrase": "correct horse battery staple",
        "why": "hello-passphrase.ferry with bit 0 of its third-to-last byte (in the tag) flipped",
    })
    (HERE / "vectors.json").write_text(json.dumps(vectors, indent=2) + "\n")


if __name__ == "__main__":
    main()
