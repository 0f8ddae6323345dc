"""The debug log never contains a password, passphrase, private key or share token."""

from __future__ import annotations

import logging

from backend.log import redact, register_secret


def test_registered_secrets_and_patterns_are_redacted() -> None:
    register_secret("hunter2-vault-pass")
    text = (
        "unlock with hunter2-vault-pass; password=abc123 passphrase: 'two words' "
        "link https://x/s/AbCdEfGhIjKlMnOpQrStUv "
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    )
    out = redact(text)
    for secret in ("hunter2-vault-pass", "abc123", "two words", "AbCdEfGhIjKlMnOpQrStUv", "AAAA"):
        assert secret not in out


def test_log_file_written_by_the_cli_has_no_secret(ferry_home, tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import logging; from backend.log import setup_logging, register_secret;"
        "setup_logging(); register_secret('S3cretPassw0rd');"
        "logging.getLogger('ferry.test').info('trying password S3cretPassw0rd for %s', 'site')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    log = (ferry_home / "logs" / "ferry.log").read_text()
    assert "trying password" in log and "S3cretPassw0rd" not in log
    assert (ferry_home / "logs" / "ferry.log").stat().st_mode & 0o077 == 0
    logging.getLogger("ferry").handlers.clear()
