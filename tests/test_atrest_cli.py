"""Encryption at rest switched on in one step with the real ``ferry`` command against OpenSSH:
``sites add --encrypt-at-rest`` creates the key in the vault (and says how to back it up),
``put``/``get`` then round-trip with no manual vault step; ``vault export-key`` /
``import-key`` carry the key to another machine; ``vault set/remove`` exist as the hints say;
a private key file other users may read is refused with its ``chmod 600`` fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from backend.crypto.header import MAGIC
from backend.hostkeys import fingerprint_of_line

FERRY = str(Path(sys.executable).with_name("ferry"))
PASS = "vault master passphrase"


def ferry(home: Path, *args: str, stdin: str | None = None,
          passfile: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FERRY_HOME": str(home), "CI": "true"}
    env.pop("SSH_AUTH_SOCK", None)
    if passfile is not None:
        env["FERRY_VAULT_PASSPHRASE_FILE"] = str(passfile)
    result = subprocess.run([FERRY, *args], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _passfile(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text(PASS + "\n")
    path.chmod(0o600)
    return path


def _add_encrypted_site(home: Path, sshd, passfile: Path, *extra: str) -> None:
    add = ferry(home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                "--user", sshd.user, "--key", str(sshd.client_key_path), "--encrypt-at-rest",
                *extra, passfile=passfile)
    assert add.returncode == 0, add.stderr
    fp = fingerprint_of_line(sshd.host_key_line)
    assert ferry(home, "sites", "trust", "lab", "--fingerprint", fp).returncode == 0


def test_sites_add_encrypt_at_rest_then_put_and_get_round_trip(tmp_path: Path, sshd) -> None:
    home, passfile = tmp_path / "home", _passfile(tmp_path)
    add = ferry(home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                "--user", sshd.user, "--key", str(sshd.client_key_path), "--encrypt-at-rest",
                passfile=passfile)
    assert add.returncode == 0, add.stderr
    # how to back the key up, and that losing it loses the data, said plainly
    assert "ferry vault export-key lab --to FILE" in add.stderr
    assert "lost" in add.stderr and "nobody can decrypt them" in add.stderr
    names = ferry(home, "vault", "list", passfile=passfile)
    assert "site/lab/encryption-key" in names.stdout.split()
    fp = fingerprint_of_line(sshd.host_key_line)
    assert ferry(home, "sites", "trust", "lab", "--fingerprint", fp).returncode == 0

    data = os.urandom(700_000) + b"PATIENT NAME: DOE^JOHN"
    src = tmp_path / "study.zip"
    src.write_bytes(data)
    remote = tmp_path / "remote"
    remote.mkdir()
    put = ferry(home, "put", str(src), f"lab:{remote}/", passfile=passfile)
    assert put.returncode == 0, put.stderr  # old code: "vault holds no key for it"
    stored = remote / "study.zip.ferry"
    assert stored.read_bytes()[:8] == MAGIC  # a Ferry container on the server
    assert b"DOE^JOHN" not in stored.read_bytes() and not (remote / "study.zip").exists()

    out = tmp_path / "out"
    out.mkdir()
    get = ferry(home, "get", f"lab:{stored}", str(out), passfile=passfile)
    assert get.returncode == 0, get.stderr
    assert (out / "study.zip").read_bytes() == data


def test_export_then_import_key_on_another_machine(tmp_path: Path, sshd) -> None:
    home, passfile = tmp_path / "home", _passfile(tmp_path)
    _add_encrypted_site(home, sshd, passfile)
    remote = tmp_path / "remote"
    remote.mkdir()
    src = tmp_path / "scan.dcm"
    src.write_bytes(b"DICM" * 50_000)
    assert ferry(home, "put", str(src), f"lab:{remote}/", passfile=passfile).returncode == 0

    backup = tmp_path / "lab.key"
    exported = ferry(home, "vault", "export-key", "lab", "--to", str(backup), passfile=passfile)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600 and len(backup.read_bytes()) == 32
    again = ferry(home, "vault", "export-key", "lab", "--to", str(backup), passfile=passfile)
    assert again.returncode == 3 and "already exists" in again.stderr  # never overwritten

    # a second machine: same site, no key yet -> the error names the restore command
    other = tmp_path / "other-home"
    add = ferry(other, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                "--user", sshd.user, "--key", str(sshd.client_key_path), passfile=passfile)
    assert add.returncode == 0, add.stderr
    fp = fingerprint_of_line(sshd.host_key_line)
    assert ferry(other, "sites", "trust", "lab", "--fingerprint", fp).returncode == 0
    assert ferry(other, "sites", "edit", "lab", "--max-parallel", "2").returncode == 0
    edit = ferry(other, "sites", "edit", "lab", "--encrypt-at-rest", "--encryption-key-file",
                 str(backup), passfile=passfile)
    assert edit.returncode == 0, edit.stderr
    out = tmp_path / "out"
    out.mkdir()
    get = ferry(other, "get", f"lab:{remote}/scan.dcm.ferry", str(out), passfile=passfile)
    assert get.returncode == 0, get.stderr
    assert (out / "scan.dcm").read_bytes() == src.read_bytes()

    # vault remove + import-key restores the same key; a different key is never taken
    third = tmp_path / "third-home"
    imp = ferry(third, "vault", "import-key", "lab", "--from", str(backup), passfile=passfile)
    assert imp.returncode == 0, imp.stderr
    other_key = tmp_path / "other.key"
    other_key.write_bytes(bytes(range(32)))
    clash = ferry(third, "vault", "import-key", "lab", "--from", str(other_key),
                  passfile=passfile)
    assert clash.returncode == 3 and "different encryption key" in clash.stderr
    refused = ferry(third, "vault", "remove", "site/lab/encryption-key", passfile=passfile)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    removed = ferry(third, "vault", "remove", "site/lab/encryption-key", "--yes",
                    passfile=passfile)
    assert removed.returncode == 0, removed.stderr
    assert "site/lab/encryption-key" not in ferry(third, "vault", "list",
                                                  passfile=passfile).stdout


def test_missing_key_names_commands_that_exist(tmp_path: Path, sshd) -> None:
    home, passfile = tmp_path / "home", _passfile(tmp_path)
    _add_encrypted_site(home, sshd, passfile)
    assert ferry(home, "vault", "remove", "site/lab/encryption-key", "--yes",
                 passfile=passfile).returncode == 0
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    put = ferry(home, "put", str(src), f"lab:{tmp_path}/", passfile=passfile)
    assert put.returncode != 0
    assert "ferry vault import-key lab --from FILE" in put.stderr
    # the commands the hints name exist
    for args in (("vault", "import-key", "--help"), ("vault", "set", "--help"),
                 ("vault", "export-key", "--help"), ("vault", "remove", "--help")):
        assert ferry(home, *args).returncode == 0, args


def test_vault_set_reads_the_value_from_a_file_never_argv(tmp_path: Path) -> None:
    home, passfile = tmp_path / "home", _passfile(tmp_path)
    value = tmp_path / "pw"
    value.write_text("s3cret password\n")
    no_tty = ferry(home, "vault", "set", "site/lab/password", passfile=passfile)
    assert no_tty.returncode == 2 and "--from-file" in no_tty.stderr
    done = ferry(home, "vault", "set", "site/lab/password", "--from-file", str(value),
                 passfile=passfile)
    assert done.returncode == 0, done.stderr
    assert "site/lab/password" in ferry(home, "vault", "list", passfile=passfile).stdout
    bad = ferry(home, "vault", "set", "site/lab/encryption-key", "--from-file", str(value),
                passfile=passfile)
    assert bad.returncode == 3 and "64 hex digits" in bad.stderr


def test_private_key_readable_by_others_is_refused_with_the_fix(tmp_path: Path, sshd) -> None:
    home = tmp_path / "home"
    key = tmp_path / "id_open"
    key.write_bytes(sshd.client_key_path.read_bytes())
    key.chmod(0o644)
    add = ferry(home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                "--user", sshd.user, "--key", str(key))
    assert add.returncode == 3, add.stderr
    assert "UNPROTECTED PRIVATE KEY FILE" in add.stderr
    assert f"chmod 600 {key}" in add.stderr
    assert len(add.stderr.strip().splitlines()) == 1

    # a key that became readable after the site was saved: refused at connect time too
    key.chmod(0o600)
    assert ferry(home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                 "--user", sshd.user, "--key", str(key)).returncode == 0
    fp = fingerprint_of_line(sshd.host_key_line)
    assert ferry(home, "sites", "trust", "lab", "--fingerprint", fp).returncode == 0
    key.chmod(0o640)
    listed = ferry(home, "ls", f"lab:{tmp_path}")
    assert listed.returncode == 3, listed.stderr
    assert f"chmod 600 {key}" in listed.stderr and "UNPROTECTED" in listed.stderr


def test_sites_edit_encrypt_at_rest_then_put_works(tmp_path: Path, sshd) -> None:
    """The issue's steps: edit an existing site, then put (old code: "vault holds no key")."""
    home, passfile = tmp_path / "home", _passfile(tmp_path)
    add = ferry(home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(sshd.port),
                "--user", sshd.user, "--key", str(sshd.client_key_path))
    assert add.returncode == 0, add.stderr
    fp = fingerprint_of_line(sshd.host_key_line)
    assert ferry(home, "sites", "trust", "lab", "--fingerprint", fp).returncode == 0
    edit = ferry(home, "sites", "edit", "lab", "--encrypt-at-rest", passfile=passfile)
    assert edit.returncode == 0, edit.stderr
    src = tmp_path / "report.pdf"
    src.write_bytes(b"%PDF confidential " * 1000)
    put = ferry(home, "put", str(src), f"lab:{tmp_path}/remote/", passfile=passfile)
    assert put.returncode == 0, put.stderr
    assert "ferry vault export-key lab --to FILE" in edit.stderr
    assert (tmp_path / "remote" / "report.pdf.ferry").read_bytes()[:8] == MAGIC
