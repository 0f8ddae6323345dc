"""The real ``ferry`` script: sites, vault and keygen commands as a shell script uses them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from backend.vault import Vault

FERRY = Path(sys.executable).parent / "ferry"
MASTER = "master passphrase for tests"
PASSWORD = "Pw-9f3a-unique-secret"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ferry-home"


@pytest.fixture
def master_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.txt"
    path.write_text(MASTER + "\n")
    path.chmod(0o600)
    return path


def ferry(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("FERRY_VAULT_PASSPHRASE_FILE", "FERRY_NONINTERACTIVE")}
    base.update({"FERRY_HOME": str(home), "CI": "1", **(env or {})})
    return subprocess.run([str(FERRY), *args], input=stdin, capture_output=True, text=True,
                          env=base, timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_list_edit_remove(home: Path) -> None:
    out = ferry(home, "sites", "add", "lab", "--host", "lab.example.org", "--user", "alice",
                "--port", "2222", "--layout", "study-io", "--remote-dir", "/data")
    assert out.returncode == 0, out.stderr
    assert "Added site lab: alice@lab.example.org:2222" in out.stdout
    assert _mode(home / "sites.toml") == 0o600 and _mode(home) == 0o700

    listing = ferry(home, "sites", "list")
    assert listing.returncode == 0
    header, row = listing.stdout.splitlines()
    assert header.split() == ["NAME", "ADDRESS", "AUTH", "LAYOUT", "KEYS", "LAST", "CONNECTED"]
    assert row.split() == ["lab", "alice@lab.example.org:2222", "agent", "study-io", "0", "never"]

    edited = ferry(home, "sites", "edit", "lab", "--name", "imaging", "--max-parallel", "8",
                   "--no-allow-exec", "--upload-mode", "direct")
    assert edited.returncode == 0, edited.stderr
    data = json.loads(ferry(home, "sites", "list", "--json").stdout)
    assert [(d["name"], d["max_parallel"], d["allow_exec"], d["upload_mode"], d["port"])
            for d in data] == [("imaging", 8, False, "direct", 2222)]

    removed = ferry(home, "sites", "remove", "imaging")
    assert removed.returncode == 0 and "Removed site imaging" in removed.stdout
    assert json.loads(ferry(home, "sites", "list", "--json").stdout) == []


def test_bad_input_exit_codes(home: Path, tmp_path: Path) -> None:
    assert ferry(home, "sites", "add", "a", "--host", "h.example.org").returncode == 0
    dup = ferry(home, "sites", "add", "a", "--host", "other.example.org")
    assert dup.returncode == 3 and "a site named a already exists" in dup.stderr
    missing_key = ferry(home, "sites", "add", "b", "--host", "h", "--key", str(tmp_path / "no"))
    assert missing_key.returncode == 3 and "does not exist or is not readable" in missing_key.stderr
    bad_jump = ferry(home, "sites", "add", "b", "--host", "h", "--jump", "ghost")
    assert bad_jump.returncode == 3 and "jump site ghost is not a saved site" in bad_jump.stderr
    bad_port = ferry(home, "sites", "add", "b", "--host", "h", "--port", "70000")
    assert bad_port.returncode == 3 and "port must be 1-65535" in bad_port.stderr
    usage = ferry(home, "sites", "add", "b", "--host", "h", "--agent", "--password-stdin")
    assert usage.returncode == 2
    unknown = ferry(home, "sites", "edit", "nope", "--port", "23")
    assert unknown.returncode == 3 and "no site named nope; known: a" in unknown.stderr
    for result in (dup, missing_key, bad_jump, bad_port, usage, unknown):
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert [d["name"] for d in json.loads(ferry(home, "sites", "list", "--json").stdout)] == ["a"]


def test_corrupt_sites_file_is_refused_untouched(home: Path) -> None:
    home.mkdir(mode=0o700)
    path = home / "sites.toml"
    path.write_bytes(b"# mine\n[sites.lab]\nhost = 'lab'\nport = 'twenty'\n")
    before = path.read_bytes()
    for args in (("sites", "list"), ("sites", "add", "x", "--host", "h"),
                 ("sites", "edit", "lab", "--port", "22"), ("sites", "remove", "lab")):
        result = ferry(home, *args)
        assert result.returncode == 3, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{path}:4: site lab: port must be an integer" in lines[0]
        assert path.read_bytes() == before


def test_hand_comment_survives_cli_edit(home: Path) -> None:
    ferry(home, "sites", "add", "lab", "--host", "lab.example.org")
    path = home / "sites.toml"
    path.write_text(path.read_text().replace("[sites.lab]", "# ring Dana first\n[sites.lab]"))
    assert ferry(home, "sites", "edit", "lab", "--port", "2022").returncode == 0
    assert "# ring Dana first\n[sites.lab]" in path.read_text()
    assert "port = 2022" in path.read_text()


def test_password_goes_to_vault_only(home: Path, master_file: Path) -> None:
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    out = ferry(home, "-v", "sites", "add", "pw", "--host", "pw.example.org", "--password-stdin",
                stdin=PASSWORD + "\n", env=env)
    assert out.returncode == 0, out.stderr
    assert PASSWORD not in out.stdout + out.stderr
    assert _mode(home / "vault.bin") == 0o600
    assert Vault.open(home / "vault.bin", MASTER).get("site/pw/password") == PASSWORD
    assert 'auth = "password"' in (home / "sites.toml").read_text()
    logs = list((home / "logs").iterdir())
    assert logs
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
            assert MASTER.encode() not in path.read_bytes(), path
    names = ferry(home, "vault", "list", env=env)
    assert names.stdout.split() == ["site/pw/password"] and PASSWORD not in names.stdout


def test_wrong_or_missing_master_passphrase(home: Path, master_file: Path, tmp_path: Path) -> None:
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    ferry(home, "sites", "add", "a", "--host", "a", "--password-stdin", stdin="pw-one\n", env=env)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the master passphrase\n")
    before = (home / "sites.toml").read_bytes()
    bad = ferry(home, "sites", "add", "b", "--host", "b", "--password-stdin", stdin="pw-two\n",
                env={"FERRY_VAULT_PASSPHRASE_FILE": str(wrong)})
    assert bad.returncode == 4
    assert "wrong master passphrase or damaged vault" in bad.stderr
    assert (home / "sites.toml").read_bytes() == before
    nobody = ferry(home, "sites", "add", "b", "--host", "b", "--password-stdin", stdin="pw\n")
    assert nobody.returncode == 2 and "FERRY_VAULT_PASSPHRASE_FILE" in nobody.stderr
    assert (home / "sites.toml").read_bytes() == before


def test_secret_in_sites_file_is_refused(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "sites.toml").write_text("[sites.a]\nhost = 'h'\npassword = 'oops-in-clear'\n")
    out = ferry(home, "sites", "list")
    assert out.returncode == 3
    assert "ferry sites edit a --password-stdin" in out.stderr
    assert "oops-in-clear" not in out.stderr


def test_rename_and_remove_carry_vault_secrets(home: Path, master_file: Path) -> None:
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    ferry(home, "sites", "add", "a", "--host", "a", "--password-stdin", stdin="pw-one\n", env=env)
    renamed = ferry(home, "sites", "edit", "a", "--name", "b", env=env)
    assert renamed.returncode == 0, renamed.stderr
    assert Vault.open(home / "vault.bin", MASTER).names() == ["site/b/password"]
    changed = ferry(home, "sites", "edit", "b", "--password-stdin", stdin="pw-new\n", env=env)
    assert changed.returncode == 0
    assert Vault.open(home / "vault.bin", MASTER).get("site/b/password") == "pw-new"
    removed = ferry(home, "sites", "remove", "b", env=env)
    assert removed.returncode == 0 and "Deleted 1 secret(s)" in removed.stderr
    assert Vault.open(home / "vault.bin", MASTER).names() == []


def test_remove_without_unlocking_leaves_secret_and_says_so(
    home: Path, master_file: Path
) -> None:
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    ferry(home, "sites", "add", "a", "--host", "a", "--password-stdin", stdin="pw-one\n", env=env)
    removed = ferry(home, "sites", "remove", "a")
    assert removed.returncode == 0
    assert "stays in it" in removed.stderr
    assert Vault.open(home / "vault.bin", MASTER).names() == ["site/a/password"]


def test_vault_passwd(home: Path, master_file: Path, tmp_path: Path) -> None:
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    ferry(home, "sites", "add", "a", "--host", "a", "--password-stdin", stdin="pw-one\n", env=env)
    new = tmp_path / "new.txt"
    new.write_text("the new master passphrase\n")
    out = ferry(home, "vault", "passwd", "--new-passphrase-file", str(new), env=env)
    assert out.returncode == 0, out.stderr
    assert ferry(home, "vault", "list", env=env).returncode == 4
    listed = ferry(home, "vault", "list", env={"FERRY_VAULT_PASSPHRASE_FILE": str(new)})
    assert listed.stdout.split() == ["site/a/password"]


def test_keygen_and_key_site_with_passphrase(home: Path, master_file: Path) -> None:
    out = ferry(home, "keygen", "--name", "provider", "--passphrase-stdin",
                stdin="key passphrase 1\n")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("ssh-ed25519 ") and " ferry-provider@" in line
    private = home / "keys" / "provider"
    assert str(private) in out.stderr
    assert _mode(private) == 0o600 and _mode(home / "keys") == 0o700
    assert asyncssh.read_private_key(str(private), "key passphrase 1") is not None
    again = ferry(home, "keygen", "--name", "provider")
    assert again.returncode == 3 and "already exists" in again.stderr
    env = {"FERRY_VAULT_PASSPHRASE_FILE": str(master_file)}
    added = ferry(home, "sites", "add", "p", "--host", "p.example.org", "--key", str(private),
                  "--key-passphrase-stdin", stdin="key passphrase 1\n", env=env)
    assert added.returncode == 0, added.stderr
    assert Vault.open(home / "vault.bin", MASTER).get("site/p/passphrase") == "key passphrase 1"
    rsa = ferry(home, "keygen", "--type", "ecdsa")
    assert rsa.returncode == 0 and rsa.stdout.startswith("ecdsa-sha2-nistp256 ")
    assert (home / "keys" / "id_ecdsa").exists()


def test_keygen_symmetric(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "case.key"
    out = ferry(home, "keygen", "--symmetric", str(target))
    assert out.returncode == 0, out.stderr
    assert len(target.read_bytes()) == 32 and _mode(target) == 0o600
    before = target.read_bytes()
    again = ferry(home, "keygen", "--symmetric", str(target))
    assert again.returncode == 3 and target.read_bytes() == before


def test_import_ssh_config(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_bytes(
        b"Host bastion\n  HostName bastion.example.org\n  User admin\n"
        b"Host lab\n  HostName lab.internal\n  ProxyJump bastion\n  IdentityFile ~/.ssh/id_lab\n"
        b"Host evil\n  ProxyCommand sh -c 'touch /tmp/ferry-pwned'\n"
        b"Host *\n  ServerAliveInterval 20\n"
        b"Host \x1b[31mred\n  Port 0\n"
        b"Host huge\n  HostName " + b"a" * 50_000 + b"\n"
    )
    assert ferry(home, "sites", "add", "bastion", "--host", "mine.example.org").returncode == 0
    out = ferry(home, "sites", "import-ssh-config", str(config))
    assert out.returncode == 0, out.stderr
    assert "Imported 1 site(s):" in out.stdout
    assert "lab  " in out.stdout and "via bastion" in out.stdout
    assert "bastion: a site with this name already exists; not overwritten" in out.stdout
    assert "evil: uses ProxyCommand" in out.stdout
    assert "\x1b" not in out.stdout
    assert not Path("/tmp/ferry-pwned").exists()
    data = {d["name"]: d for d in json.loads(ferry(home, "sites", "list", "--json").stdout)}
    assert set(data) == {"bastion", "lab"}
    assert data["bastion"]["host"] == "mine.example.org"
    assert (data["lab"]["auth"], data["lab"]["keepalive"], data["lab"]["jump"]) == (
        "key", 20, "bastion")
    missing = ferry(home, "sites", "import-ssh-config", str(tmp_path / "none"))
    assert missing.returncode == 3
