"""``ferry share ...`` and ``curl`` against a real share service, as a script would use them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from backend.audit import AuditLog
from backend.sites.store import SiteStore

ROOT = Path(__file__).resolve().parent.parent


async def ferry(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", *args, cwd=ROOT, env=dict(os.environ),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode(), err.decode()


async def curl(*args: str) -> int:
    proc = await asyncio.create_subprocess_exec("curl", "-fsS", *args)
    return await asyncio.wait_for(proc.wait(), 60)


async def test_create_list_extend_add_recipient_revoke(svc, tmp_path):
    src = tmp_path / "case 17.zip"
    src.write_bytes(os.urandom(300_000))
    pwfile = tmp_path / "pw"
    pwfile.write_text("a long enough password\n")
    code, out, err = await ferry(
        "share", "create", str(src), "--to", "a@example.org", "--to", "b@example.org",
        "--password-file", str(pwfile), "--max-downloads", "3", "--json",
    )
    assert code == 0, err
    created = json.loads(out)
    share_id = created["share"]["id"]
    assert [link["email"] for link in created["links"]] == ["a@example.org", "b@example.org"]
    assert len({link["url"] for link in created["links"]}) == 2
    # the scripted download from the docs, and a curl resume from a partial file
    dest = tmp_path / "got.zip"
    url = created["links"][0]["url"]
    assert await curl("-d", "password=a long enough password", url + "/download",
                      "-o", str(dest)) == 0
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    # resuming (curl's -C and -r mean an upload range with -d: send the Range header itself)
    part = tmp_path / "rest"
    assert await curl("-H", "Range: bytes=100000-", "-d", "password=a long enough password",
                      url + "/download", "-o", str(part)) == 0
    assert src.read_bytes()[:100_000] + part.read_bytes() == src.read_bytes()

    code, out, _ = await ferry("share", "list")
    assert code == 0 and share_id in out and "active" in out and "case 17.zip" in out
    code, out, _ = await ferry("share", "extend", share_id, "--expires", "5d")
    assert code == 0 and "now expires" in out
    code, out, _ = await ferry("share", "add-recipient", share_id, "c@example.org", "--json")
    assert code == 0 and json.loads(out)["url"].startswith(svc.public_url + "/s/")
    code, out, _ = await ferry("share", "show", share_id)
    # the ranged request alone did not deliver the whole file, so it is not a second download
    assert "c@example.org" in out and "a@example.org: 1 download(s)" in out
    code, out, _ = await ferry("share", "revoke", share_id)
    assert code == 0
    code, out, _ = await ferry("share", "list", "--json")
    assert json.loads(out)[0]["status"] == "purged"
    assert await curl("-d", "password=a long enough password", url + "/download",
                      "-o", str(tmp_path / "x")) == 22  # HTTP 410
    code, out, _ = await ferry("audit", "verify")
    assert code == 0 and "chain intact" in out


async def test_caps_and_unknown_share_exit_13(svc, tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    code, _, err = await ferry("share", "create", str(src), "--expires", "30d")
    assert code == 13 and "exceeds the policy maximum" in err and "Traceback" not in err
    many = [arg for i in range(11) for arg in ("--to", f"r{i}@example.org")]
    code, _, err = await ferry("share", "create", str(src), *many)
    assert code == 13 and "11 recipients is over the policy maximum of 10" in err
    code, _, err = await ferry("share", "show", "nosuchshare")
    assert code == 13 and "no share with id" in err
    code, _, err = await ferry("share", "create", str(tmp_path / "missing"))
    assert code == 9


async def test_share_without_a_running_service_says_so(ferry_home, tmp_path):
    code, _, err = await ferry("share", "list")
    assert code == 13 and "not running" in err and "ferry serve" in err


async def test_share_create_from_a_site_streams_over_sftp(svc, sftp_server, tmp_path):
    remote_file = sftp_server.root / "cases" / "study.zip"
    remote_file.parent.mkdir(parents=True, exist_ok=True)
    remote_file.write_bytes(os.urandom(700_000))
    SiteStore().add(sftp_server.site("pacs"))
    code, out, err = await ferry(
        "share", "create", "pacs:/cases/study.zip", "--generate-password", "--json"
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["share"]["name"] == "study.zip"
    assert created["share"]["sha256"] == hashlib.sha256(remote_file.read_bytes()).hexdigest()
    dest = tmp_path / "dl.zip"
    assert await curl("-d", f"password={created['password']}",
                      created["links"][0]["url"] + "/download", "-o", str(dest)) == 0
    assert dest.read_bytes() == remote_file.read_bytes()
    assert AuditLog().query(event="share.downloaded")
