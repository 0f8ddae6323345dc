"""``ferry share create`` of real DICOM against a real share service: a site's or the share
policy's de-identification rule refuses identifying studies (naming the attributes), an
override with a reason is audited, and ``--deidentify`` shares a clean zip."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydicom import dcmread

from backend import paths
from backend.audit import AuditLog
from backend.dicom.mapping import MappingStore
from backend.shares.server import ServiceHandle, start_share_service, stop_share_service
from backend.sites.store import SiteStore
from backend.vault import Vault
from tests import dicom_helpers as dh

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
async def svc(ferry_home: Path, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServiceHandle]:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("FERRY_VAULT_PASSPHRASE_FILE", str(secret))
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    try:
        yield handle
    finally:
        await stop_share_service(handle)


async def ferry(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", *args, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def download(created: dict, dest: Path) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-fsS", "-d", f"password={created['password']}",
        created["links"][0]["url"] + "/download", "-o", str(dest))
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    return dest.read_bytes()


async def shares() -> list[dict]:
    code, out, err = await ferry("share", "list", "--json")
    assert code == 0, err
    return json.loads(out)


async def test_share_of_an_identifiable_study_on_a_policy_site_is_refused(
    svc, sftp_server, tmp_path: Path
) -> None:
    dh.study(tmp_path / "case")
    remote_zip = sftp_server.root / "cases" / "study.zip"
    remote_zip.parent.mkdir(parents=True)
    dh.zip_folder(tmp_path / "case", remote_zip)
    (sftp_server.root / "cases" / "other.bin").write_bytes(os.urandom(5000))
    SiteStore().add(sftp_server.site("pacs", require_deidentified=True))

    code, out, err = await ferry("share", "create", "pacs:/cases/study.zip",
                                 "--generate-password")
    assert code == 17, err
    lines = err.strip().splitlines()
    assert "site pacs requires de-identified studies" in lines[0]
    assert "nothing was shared" in lines[0] and "--allow-identifiable" in lines[0]
    assert "PatientName (0010,0010): 9 files" in err and "Traceback" not in err
    assert "DOE" not in err and out == ""
    assert await shares() == [], "nothing reached the share service"

    code, _out, err = await ferry("share", "create", "pacs:/cases/study.zip", "--deidentify")
    assert code == 2 and "local copy" in err

    # a file with no DICOM in it is not the rule's business
    code, _out, err = await ferry("share", "create", "pacs:/cases/other.bin",
                                  "--generate-password")
    assert code == 0, err

    reason = "tumour board at St. Elsewhere, consent on file"
    code, out, err = await ferry("share", "create", "pacs:/cases/study.zip",
                                 "--generate-password", "--allow-identifiable",
                                 "--reason", reason, "--json")
    assert code == 0, err
    assert "under an override" in err
    [event] = AuditLog().query(event="share.identifiable_override")
    assert event.fields["reason"] == reason and event.fields["rule"] == "site pacs"
    assert event.fields["findings"]["PatientName"] == 9
    assert len(await shares()) == 2


async def test_the_share_policy_refuses_a_local_study_and_deidentify_shares_a_clean_zip(
    svc, tmp_path: Path
) -> None:
    (Path(os.environ["FERRY_HOME"]) / "share-policy.toml").write_text(
        "require_deidentified = true\n")
    written = dh.study(tmp_path / "case")
    local_zip = dh.zip_folder(tmp_path / "case", tmp_path / "study.zip")
    code, _out, err = await ferry("share", "create", str(local_zip), "--generate-password")
    assert code == 17, err
    assert "the share policy requires de-identified studies" in err
    assert "private attributes (odd groups): 9 files" in err
    assert await shares() == []

    code, out, err = await ferry("share", "create", str(tmp_path / "case"), "--deidentify",
                                 "--generate-password", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["share"]["name"] == "case-deidentified.zip"
    data = await download(created, tmp_path / "got.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    assert len(members) == 9
    for blob in members.values():
        for value in dh.PLANTED_VALUES:
            assert value not in blob
        assert written.study_uid.encode() not in blob
        assert dcmread(io.BytesIO(blob)).PatientIdentityRemoved == "YES"
    assert not list((Path(os.environ["FERRY_HOME"]) / "state" / "outgoing").glob("*.zip"))
    [mapping] = MappingStore(Vault.open(paths.vault_file(), PASSPHRASE)).for_case(
        "share", created["share"]["id"])
    assert mapping.original_patient_id == "PID-0042317"
