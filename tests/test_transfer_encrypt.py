"""Encryption at rest: uploads stored as .ferry containers, downloads decrypted on the fly,
an interrupted encrypted upload resumes segment-aligned to the identical container."""

from __future__ import annotations

import os

from backend.crypto.container import decrypt_file
from backend.transfers import JobSpec
from tests.proxies import Proxy
from tests.transfer_helpers import make_engine, sha256_of, write_random

KEY = bytes(range(32))
MiB = 1024 * 1024


async def key_provider(site):
    return KEY


async def run(make_site, spec):
    engine = make_engine(make_site, key_provider=key_provider)
    await engine.start()
    try:
        job = await engine.submit(spec)
        return await engine.wait(job), engine.files(job)
    finally:
        await engine.stop()


async def test_encrypted_upload_then_decrypting_download(ferry_home, sftp_server, tmp_path):
    src = tmp_path / "scan.dcm"
    want = write_random(src, 3 * MiB + 11, seed=1)
    site = lambda: sftp_server.site("enc", encrypt_at_rest=True)  # noqa: E731
    status, files = await run(site, JobSpec("put", "enc", [str(src)], "/vault/"))
    assert status.state == "done", files
    stored = sftp_server.root / "vault" / "scan.dcm.ferry"
    assert stored.exists() and not (sftp_server.root / "vault" / "scan.dcm").exists()
    assert src.read_bytes()[:4096] not in stored.read_bytes()  # ciphertext only on the server
    assert files[0].verify == "sha256-server" and files[0].sha256 == sha256_of(stored)
    plain = tmp_path / "check.dcm"
    decrypt_file(stored, plain, key=KEY)
    assert sha256_of(plain) == want

    out = tmp_path / "out"
    out.mkdir()
    status, files = await run(site, JobSpec("get", "enc", ["/vault/scan.dcm.ferry"], str(out)))
    assert status.state == "done", files
    assert sha256_of(out / "scan.dcm") == want
    assert not os.path.exists(out / "scan.dcm.ferry")


async def test_interrupted_encrypted_upload_resumes_to_the_same_container(ferry_home, sshd,
                                                                          tmp_path):
    src = tmp_path / "big.zip"
    want = write_random(src, 10 * MiB, seed=2)
    dest = tmp_path / "in"
    dest.mkdir()
    with Proxy(sshd.port, drop_after=6 * MiB, rate=4_000_000) as proxy:
        status, files = await run(
            lambda: sshd.site("enc", port=proxy.port, encrypt_at_rest=True),
            JobSpec("put", "enc", [str(src)], str(dest) + "/"))
        assert proxy.cuts == 1
        assert proxy.transferred < 14 * MiB  # continued at a segment, not re-sent from 0
    assert status.state == "done", files
    stored = dest / "big.zip.ferry"
    assert files[0].sha256 == sha256_of(stored)
    plain = tmp_path / "check.zip"
    decrypt_file(stored, plain, key=KEY)
    assert sha256_of(plain) == want


async def test_interrupted_decrypting_download_resumes_at_a_segment(ferry_home, sshd, tmp_path):
    """A cut mid-way through a .ferry download continues at the last whole segment whose
    plaintext is on disk (not from byte 0), and the result is verified against the server's
    SHA-256 of the container and decrypts to the original."""
    from backend.crypto.container import encrypt_file

    plain_src = tmp_path / "study.zip"
    want = write_random(plain_src, 10 * MiB + 123, seed=5)
    remote = tmp_path / "remote"
    remote.mkdir()
    encrypt_file(plain_src, remote / "study.zip.ferry", key=KEY)
    out = tmp_path / "out"
    out.mkdir()
    with Proxy(sshd.port, drop_after=6 * MiB, rate=4_000_000) as proxy:
        status, files = await run(
            lambda: sshd.site("enc", port=proxy.port, encrypt_at_rest=True),
            JobSpec("get", "enc", [str(remote / "study.zip.ferry")], str(out)))
        assert proxy.cuts == 1
        assert proxy.transferred < 13 * MiB, (proxy.transferred, status, files)  # not from 0
    assert status.state == "done", files
    assert sha256_of(out / "study.zip") == want
    assert files[0].verify == "sha256-server"
    assert files[0].sha256 == sha256_of(remote / "study.zip.ferry")
    assert not [p for p in out.iterdir() if p.name != "study.zip"]  # no temp left behind
