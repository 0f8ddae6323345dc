"""The encrypted vault: secrets round-trip, never appear in clear, and tampering is detected."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from backend.errors import VaultError
from backend.log import redact
from backend.sites.model import secret_name
from backend.vault import HEADER_SIZE, Vault

PASS = "correct horse battery"


def test_secrets_round_trip_and_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "vault.bin"
    vault = Vault.create(path, PASS)
    vault.set(secret_name("lab", "password"), "s3cret-pw!")
    vault.set(secret_name("lab", "passphrase"), "key phrase")
    vault.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    assert b"s3cret-pw!" not in raw and b"site/lab" not in raw
    again = Vault.open(path, PASS)
    assert again.get("site/lab/password") == "s3cret-pw!"
    assert again.names() == ["site/lab/passphrase", "site/lab/password"]


def test_each_save_uses_fresh_salt_and_nonce(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    vault = Vault.create(path, PASS)
    first = path.read_bytes()
    vault.save()
    second = path.read_bytes()
    assert first[9:HEADER_SIZE] != second[9:HEADER_SIZE]
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


def test_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    Vault.create(path, PASS).save()
    with pytest.raises(VaultError, match="wrong master passphrase or damaged vault"):
        Vault.open(path, "not the passphrase")


@pytest.mark.parametrize("offset", [10, 20, HEADER_SIZE - 1, HEADER_SIZE + 3, -1])
def test_tampered_vault_is_refused(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "vault.bin"
    vault = Vault.create(path, PASS)
    vault.set("x", "value-x")
    vault.save()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VaultError, match="wrong master passphrase or damaged vault"):
        Vault.open(path, PASS)


def test_truncated_or_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    Vault.create(path, PASS).save()
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(VaultError):
        Vault.open(path, PASS)
    path.write_bytes(b"not a vault at all, just some text" * 3)
    with pytest.raises(VaultError, match="not a Ferry vault"):
        Vault.open(path, PASS)


def test_absurd_scrypt_cost_is_refused_without_deriving(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    Vault.create(path, PASS).save()
    data = bytearray(path.read_bytes())
    data[9] = 40  # log2(n) = 40 would need terabytes of memory
    path.write_bytes(bytes(data))
    with pytest.raises(VaultError, match="wrong master passphrase or damaged vault"):
        Vault.open(path, PASS)


def test_missing_vault_has_a_hint(tmp_path: Path) -> None:
    assert not Vault.exists(tmp_path / "vault.bin")
    with pytest.raises(VaultError) as err:
        Vault.open(tmp_path / "vault.bin", PASS)
    assert "no vault at" in str(err.value) and "--password-stdin" in str(err.value)


def test_create_refuses_existing_and_short_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    with pytest.raises(VaultError, match="at least 8"):
        Vault.create(path, "short")
    assert not path.exists()
    Vault.create(path, PASS)
    with pytest.raises(VaultError, match="already exists"):
        Vault.create(path, PASS)


def test_change_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    vault = Vault.create(path, PASS)
    vault.set("a", "alpha-secret")
    vault.save()
    vault.change_passphrase("a brand new passphrase")
    with pytest.raises(VaultError):
        Vault.open(path, PASS)
    assert Vault.open(path, "a brand new passphrase").get("a") == "alpha-secret"


def test_concurrent_savers_merge(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    Vault.create(path, PASS).save()
    one, two = Vault.open(path, PASS), Vault.open(path, PASS)
    one.set("one", "first-secret")
    one.save()
    two.set("two", "second-secret")
    two.save()
    merged = Vault.open(path, PASS)
    assert merged.get("one") == "first-secret" and merged.get("two") == "second-secret"
    merged.delete("one")
    merged.save()
    assert Vault.open(path, PASS).names() == ["two"]


def test_loaded_secrets_are_redacted_from_logs(tmp_path: Path) -> None:
    path = tmp_path / "vault.bin"
    vault = Vault.create(path, PASS)
    vault.set("k", "Zebra-Quartz-991")
    vault.save()
    assert "Zebra-Quartz-991" not in redact("connecting with Zebra-Quartz-991 now")
    assert PASS not in redact(f"typed {PASS}")


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    vault = Vault.create(tmp_path / "vault.bin", PASS)
    with pytest.raises(VaultError, match="empty"):
        vault.set("a", "")
