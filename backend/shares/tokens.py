"""Link tokens, share ids and passwords.

Tokens are 256-bit ``secrets.token_urlsafe`` values; only their SHA-256 is stored. Generated
passwords are five words from a 1600-word list joined by ``-`` plus two digits (~60 bits), easy
to read out over the phone; all passwords are stored as argon2id hashes.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)

_SYLLABLES_A = list("bdfghjklmnprstvz")
_SYLLABLES_V = list("aeiou")


def _wordlist() -> list[str]:
    """1600 pronounceable 5-letter words (consonant-vowel-consonant-vowel-consonant style)."""
    words = []
    for c1 in _SYLLABLES_A:
        for v1 in _SYLLABLES_V:
            for c2 in _SYLLABLES_A[:10]:
                for v2 in ("a", "o"):
                    words.append(c1 + v1 + c2 + v2)
    return words


_WORDS = _wordlist()


def new_token() -> str:
    return _secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id() -> str:
    """A short share id for the CLI (not a secret: 10 lowercase base32 characters)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "".join(_secrets.choice(alphabet) for _ in range(10))


def generate_password() -> str:
    words = [_secrets.choice(_WORDS) for _ in range(5)]
    return "-".join(words) + f"-{_secrets.randbelow(100):02d}"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
