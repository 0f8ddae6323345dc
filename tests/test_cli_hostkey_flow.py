"""Issue 2's acceptance flow with the real ``ferry`` command against OpenSSH's sshd:
unknown key refused with its fingerprint, pinned by ``sites trust``, then listed; a replaced
server key refused with a man-in-the-middle warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncssh

from backend.hostkeys import fingerprint
from tests.servers import start_sshd

FERRY = str(Path(sys.executable).with_name("ferry"))


def ferry(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FERRY_HOME": str(home), "CI": "true"}
    env.pop("SSH_AUTH_SOCK", None)
    result = subprocess.run(
        [FERRY, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_unknown_then_trusted_then_changed_host_key(tmp_path: Path, client_key) -> None:
    home = tmp_path / "home"
    data = tmp_path / "cases"
    data.mkdir()
    (data / "CASE-0001.zip").write_bytes(b"PK")
    first_key = asyncssh.generate_private_key("ssh-ed25519")
    server = start_sshd(tmp_path / "sshd1", client_key, host_key=first_key)
    try:
        add = ferry(
            home, "sites", "add", "lab", "--host", "127.0.0.1", "--port", str(server.port),
            "--user", server.user, "--key", str(server.client_key_path),
        )
        assert add.returncode == 0, add.stderr

        refused = ferry(home, "ls", f"lab:{data}")
        fp = fingerprint(first_key)
        assert refused.returncode == 7
        assert fp in refused.stderr
        assert f"ferry sites trust lab --fingerprint {fp}" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        assert ferry(home, "sites", "trust", "lab").returncode == 7  # no TTY, no fingerprint
        wrong = ferry(home, "sites", "trust", "lab", "--fingerprint", "SHA256:" + "A" * 43)
        assert wrong.returncode == 8
        trusted = ferry(home, "sites", "trust", "lab", "--fingerprint", fp)
        assert trusted.returncode == 0 and fp in trusted.stdout

        listed = ferry(home, "ls", f"lab:{data}")
        assert listed.returncode == 0, listed.stderr
        assert "CASE-0001.zip" in listed.stdout
        port = server.port
    finally:
        server.stop()

    new_key = asyncssh.generate_private_key("ssh-ed25519")
    server = start_sshd(tmp_path / "sshd2", client_key, host_key=new_key, port=port)
    try:
        changed = ferry(home, "ls", f"lab:{data}")
        assert changed.returncode == 8
        assert "HOST KEY CHANGED" in changed.stderr and "man-in-the-middle" in changed.stderr
        assert fingerprint(first_key) in changed.stderr and fingerprint(new_key) in changed.stderr
        assert "CASE-0001.zip" not in changed.stdout
    finally:
        server.stop()


def test_sites_show_reports_negotiated_aes256(tmp_path: Path, sshd) -> None:
    home = tmp_path / "home"
    add = ferry(
        home, "sites", "add", "secure", "--host", "127.0.0.1", "--port", str(sshd.port),
        "--user", sshd.user, "--key", str(sshd.client_key_path), "--cipher-profile", "aes256",
    )
    assert add.returncode == 0, add.stderr
    fp = fingerprint(asyncssh.import_public_key(sshd.host_key_line))
    assert ferry(home, "sites", "trust", "secure", "--fingerprint", fp).returncode == 0
    shown = ferry(home, "sites", "show", "secure")
    assert shown.returncode == 0, shown.stderr
    assert "aes256-gcm@openssh.com" in shown.stdout or "aes256-ctr" in shown.stdout
    assert "chacha20" not in shown.stdout and "aes128" not in shown.stdout


def test_ls_of_unknown_site_and_bad_target_are_one_line_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    unknown = ferry(home, "ls", "nosuchsite:/x")
    assert unknown.returncode == 3 and "nosuchsite" in unknown.stderr
    bad = ferry(home, "ls", "/local/path")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_demo_serve_only_then_ls_lists_sample_cases(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "FERRY_HOME": str(home), "CI": "true"}
    proc = subprocess.Popen(
        [FERRY, "demo", "--serve-only", "--large-file-mib", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
            if line.startswith("Serving"):
                break
        info = dict(line.split(": ", 1) for line in lines if ": " in line)
        assert info["host"].strip() == "127.0.0.1" and int(info["port"]) > 0
        inbox = ferry(home, "ls", "demo:From_IDT")
        assert inbox.returncode == 0, inbox.stderr
        assert "CASE-20261118-0031/" in inbox.stdout
        results = ferry(home, "ls", "demo-ai:output", "--json")
        assert results.returncode == 0 and "_out" in results.stdout
    finally:
        proc.terminate()
        proc.wait(10)
