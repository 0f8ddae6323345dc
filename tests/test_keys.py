"""SSH key-pair generation: private 0600, usable public line, never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh
import pytest

from backend.errors import ConfigError
from backend.keys import generate_keypair, key_needs_passphrase


@pytest.mark.parametrize(("kind", "prefix"), [("ed25519", "ssh-ed25519 "),
                                              ("ecdsa", "ecdsa-sha2-nistp256 ")])
def test_generated_key_pair_matches_and_is_private(
    ferry_home: Path, kind: str, prefix: str
) -> None:
    private, line = generate_keypair(kind, f"lab-{kind}", None)  # type: ignore[arg-type]
    assert private == ferry_home / "keys" / f"lab-{kind}"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert line.startswith(prefix) and f"ferry-lab-{kind}@" in line
    loaded = asyncssh.read_private_key(str(private))
    assert loaded.export_public_key("openssh").decode().split()[:2] == line.split()[:2]
    assert (private.parent / f"lab-{kind}.pub").read_text().strip() == line
    assert key_needs_passphrase(private) is False


def test_rsa_keys_are_4096_bits(ferry_home: Path) -> None:
    private, line = generate_keypair("rsa", "big", None)
    assert line.startswith("ssh-rsa ")
    key = asyncssh.read_private_key(str(private))
    assert key.pyca_key.key_size == 4096


def test_passphrase_protects_the_private_key(ferry_home: Path) -> None:
    private, _ = generate_keypair("ed25519", "locked", "a long key passphrase")
    assert key_needs_passphrase(private) is True
    with pytest.raises(asyncssh.KeyImportError):
        asyncssh.read_private_key(str(private))
    assert asyncssh.read_private_key(str(private), "a long key passphrase") is not None


def test_existing_key_is_never_overwritten(ferry_home: Path) -> None:
    private, _line = generate_keypair("ed25519", "once", None)
    before = private.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        generate_keypair("ed25519", "once", None)
    assert private.read_bytes() == before
    assert sorted(p.name for p in private.parent.iterdir()) == ["once", "once.pub"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x.pub"])
def test_bad_key_names_are_refused(ferry_home: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid key name"):
        generate_keypair("ed25519", name, None)
    assert not (ferry_home / "escape").exists()
