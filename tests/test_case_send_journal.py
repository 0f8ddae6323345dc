"""``ferry case send`` as one journaled operation (issue 12, findings 5, 6 and 9's archive item).

The case exists as ``sending`` before the upload starts and is completed by whichever process
finishes the job (here: ``ferry queue resume`` after ``kill -9``); re-running the send resumes
it; a cancelled or failed send removes what it created on the server; direct uploads on a case
site need ``--allow-partial-reads``; archiving on a read-only account exits 10 in one line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import asyncssh
import pytest

from backend import ssh
from backend.audit import AuditLog
from backend.cases import send_study
from backend.cases.store import CaseStore
from backend.cases.transport import engine_for
from backend.demo.samples import populate
from backend.demo.server import start_sftp_server
from backend.errors import TransferError
from backend.session import Session
from backend.sites.store import SiteStore
from backend.transfers import Journal
from backend.transfers.model import SHA256_OF_SERVER_COPY, verified_label
from tests.case_helpers import snapshot
from tests.proxies import Proxy
from tests.servers import InProcessServer, write_private_key

ROOT = Path(__file__).resolve().parent.parent
STUDY = "0b7e4d2a-1111-4000-8000-00000000c0de"
MiB = 1024 * 1024
SENDING, SEND_FAILED = "sending", "send failed"  # backend/cases/store.py


async def until(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def make_study(folder: Path, files: int = 6, mib: int = 4) -> None:
    """Random "DICOM" files (incompressible: the zip is as big as the study)."""
    for i in range(files):
        path = folder / "series_001" / f"IM{i:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(mib * MiB))


async def ferry(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *_cmd(*args), env=_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tui.cli import main; main()", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}


def outgoing() -> list[Path]:
    folder = Path(os.environ["FERRY_HOME"]) / "state" / "outgoing"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def served(sshd, tmp_path: Path, ferry_home: Path):
    """A study-io site "ai" on sshd behind a proxy slow enough to kill an upload midway."""
    base = tmp_path / "served"
    (base / "ai").mkdir(parents=True)
    make_study(tmp_path / "study")
    with Proxy(sshd.port, rate=1_000_000) as proxy:
        SiteStore().add(sshd.site("ai", layout="study-io", remote_dir=str(base / "ai"),
                                  port=proxy.port))
        yield base / "ai", tmp_path / "study", proxy


async def kill_mid_upload(study: Path) -> int:
    """Start ``ferry case send ai STUDY``, kill -9 it once 2 MiB are checkpointed; the job id."""
    proc = await asyncio.create_subprocess_exec(
        *_cmd("case", "send", "ai", str(study), "--study-id", STUDY,
              "--allow-non-dicom"), env=_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    journal = Journal()

    def checkpointed() -> bool:
        jobs = journal.job_rows()
        return bool(jobs) and any(f.offset > 2 * MiB for f in journal.files(jobs[0].id))

    try:
        await until(checkpointed, timeout=60)
        record = CaseStore().get("ai", STUDY)
        assert record is not None and record.state == SENDING, "recorded before the upload"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    (job,) = journal.job_rows()
    assert job.state == "running" and job.spec.tag == f"case-send:{STUDY}"
    return job.id


async def test_kill_9_mid_send_then_queue_resume_records_the_case_as_sent(served) -> None:
    root, study, proxy = served
    job_id = await kill_mid_upload(study)
    folder = root / "input" / STUDY / "input"
    assert not (folder / f"{STUDY}.zip").exists() and (folder / f"{STUDY}.zip.ferrypart").exists()
    assert len(outgoing()) == 1

    proxy.rate = None
    code, _out, err = await ferry("queue", "resume")
    assert code == 0, err
    assert f"job {job_id}: study {STUDY} sent to ai" in err

    final = folder / f"{STUDY}.zip"
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == [f"{STUDY}.zip"], "no temp file left"
    code, out, err = await ferry("case", "list", "ai", "--json")
    assert code == 0, err
    (case,) = json.loads(out)["cases"]
    assert case["case_id"] == STUDY and case["state"] == "processing"
    assert case["sha256"] == digest and case["sent_at"]
    assert case["remote_path"] == str(final)
    assert case["verified_by"] in SHA256_OF_SERVER_COPY  # sshd can hash its copy
    code, out, err = await ferry("case", "show", "ai", STUDY)
    assert code == 0, err
    assert f"verified:    {verified_label(case['verified_by'])}" in out
    assert digest in out and str(final) in out
    (event,) = AuditLog().query(event="case.sent")
    assert event.fields["study"] == STUDY and event.fields["sha256"] == digest
    assert event.fields["verified_by"] == case["verified_by"]
    assert outgoing() == [], "the plaintext zip is removed once published"


async def test_rerunning_case_send_after_kill_resumes_the_same_study(served) -> None:
    root, study, proxy = served
    job_id = await kill_mid_upload(study)
    proxy.rate = None
    code, out, err = await ferry("case", "send", "ai", str(study), "--study-id", STUDY,
                                 "--allow-non-dicom")
    assert code == 0, err
    assert out.strip() == STUDY and "resumed and sent" in err
    assert "verified: sha256 by" in err and "already exists" not in err
    assert [j.id for j in Journal().job_rows()] == [job_id], "the same job, continued"
    assert sorted(p.name for p in (root / "input").iterdir()) == [STUDY], "no second study"
    assert outgoing() == []
    record = CaseStore().get("ai", STUDY)
    assert record is not None and record.sent_at and record.verified_by in SHA256_OF_SERVER_COPY

    code, out, err = await ferry("case", "send", "ai", str(study), "--study-id", STUDY,
                                 "--allow-non-dicom")
    assert code == 3 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"study {STUDY} was already sent to ai" in lines[0], err
    assert len(AuditLog().query(event="case.sent")) == 1


async def test_queue_cancel_of_a_killed_send_leaves_nothing_on_the_server(served) -> None:
    root, study, _proxy = served
    job_id = await kill_mid_upload(study)
    code, out, err = await ferry("queue", "cancel", str(job_id))
    assert code == 0, err
    assert f"job {job_id} cancelled" in out
    assert "nothing it created is left on the server" in err
    assert list(root.rglob("*")) == [], "no temp file, no empty folders"
    assert outgoing() == []
    record = CaseStore().get("ai", STUDY)
    assert record is not None and record.state == SEND_FAILED
    (event,) = AuditLog().query(event="case.send_failed")
    assert event.fields["reason"] == "cancelled" and event.fields["left"] == []
    code, out, err = await ferry("case", "list", "ai", "--json")
    assert [c["state"] for c in json.loads(out)["cases"]] == ["send failed"]


async def test_queue_cancel_of_a_running_send_stops_it_and_cleans_up(served) -> None:
    root, study, _proxy = served
    proc = await asyncio.create_subprocess_exec(
        *_cmd("case", "send", "ai", str(study), "--study-id", STUDY,
              "--allow-non-dicom"), env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    journal = Journal()
    try:
        await until(lambda: bool(journal.job_rows()) and any(
            f.offset > MiB for f in journal.files(journal.job_rows()[0].id)), timeout=60)
        code, _out, err = await ferry("queue", "cancel", str(journal.job_rows()[0].id))
        assert code == 0, err
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 11, err
    assert "was not sent to ai" in err.decode() and "cancelled" in err.decode()
    assert list(root.rglob("*")) == [], "no temp file, no empty folders"
    assert outgoing() == []


async def test_direct_upload_mode_needs_allow_partial_reads(sshd, tmp_path, ferry_home) -> None:
    base = tmp_path / "served"
    (base / "ai").mkdir(parents=True)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(5000))
    SiteStore().add(sshd.site("ai", layout="study-io", remote_dir=str(base / "ai"),
                              upload_mode="direct"))
    code, out, err = await ferry("case", "send", "ai", str(tmp_path / "study"),
                                 "--allow-non-dicom")
    assert code == 2 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--allow-partial-reads" in lines[0], err
    assert "may read a partial study" in lines[0]
    assert list((base / "ai").iterdir()) == [], "nothing was sent"
    assert CaseStore().list("ai") == []

    code, out, err = await ferry("case", "send", "ai", str(tmp_path / "study"),
                                 "--allow-non-dicom", "--allow-partial-reads")
    assert code == 0, err
    assert "ferry: warning:" in err and "may read a partial study" in err
    study_id = out.strip()
    assert (base / "ai" / "input" / study_id / "input" / f"{study_id}.zip").is_file()


class QuotaSFTPServer(asyncssh.SFTPServer):
    """Refuses every write past the first MiB of a file (a provider's quota running out)."""

    def write(self, file_obj: object, offset: int, data: bytes) -> object:
        if offset + len(data) > MiB:
            raise asyncssh.SFTPFailure("disk quota exceeded")
        return super().write(file_obj, offset, data)


async def test_a_failed_send_removes_the_temp_file_and_the_folders_it_made(
    tmp_path, ferry_home, host_key, client_key
) -> None:
    key = write_private_key(client_key, tmp_path / "id_quota")
    running = await start_sftp_server(tmp_path / "quota", host_key=host_key,
                                      authorized_keys=[client_key],
                                      sftp_factory=QuotaSFTPServer)
    try:
        server = InProcessServer(server=running, client_key_path=key)
        (running.root / "ai").mkdir()
        site = server.site("ai", layout="study-io", remote_dir="/ai")
        SiteStore().add(site)
        make_study(tmp_path / "study", files=2, mib=2)

        async with engine_for(Session()) as engine, ssh.sftp_session(site) as (_c, sftp):
            with pytest.raises(TransferError) as caught:
                await send_study(site, sftp, engine, tmp_path / "study", study_id=STUDY)
    finally:
        running.close()
        await running.wait_closed()
    assert "disk quota exceeded" in caught.value.message
    assert "nothing it created is left on the server" in caught.value.message
    assert list((running.root / "ai").rglob("*")) == [], "no .ferrypart, no input/<id>/"
    record = CaseStore().get("ai", STUDY)
    assert record is not None and record.state == SEND_FAILED and record.sent_at is None
    assert outgoing() == []
    assert AuditLog().query(event="case.sent") == []


async def test_archive_on_a_read_only_server_exits_10_and_moves_nothing(
    server_of_kind, ferry_home
) -> None:
    async with server_of_kind("readonly") as server:
        populate(server.root, large_file_mib=1)
        SiteStore().add(server.site("ro", layout="inbox-outbox", remote_dir=server.remote("idt")))
        before = snapshot(server.root)
        code, _out, err = await ferry("case", "archive", "ro", "CASE-20261118-0031")
    assert code == 10, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferry: error:"), err
    assert "read-only" in lines[0] and "nothing was moved" in lines[0]
    assert "write access" in lines[0] and "Traceback" not in err
    assert snapshot(server.root) == before
