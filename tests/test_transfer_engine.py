"""The transfer engine against the in-process SFTP server: round trips, policies, queue."""

from __future__ import annotations

from backend.audit import AuditLog
from backend.transfers import JobSpec
from tests.transfer_helpers import make_engine, sha256_of, tree, write_random


async def test_download_and_upload_round_trip_verified_and_audited(ferry_home, sftp_server,
                                                                   tmp_path):
    remote = sftp_server.root
    want = write_random(remote / "cases" / "big.bin", 3 * 1024 * 1024 + 17, seed=1)
    write_random(remote / "cases" / "sub" / "small.txt", 1000, seed=2)
    (remote / "cases" / "empty").write_bytes(b"")
    engine = make_engine(lambda: sftp_server.site("lab"))
    await engine.start()
    try:
        out = tmp_path / "local"
        out.mkdir()
        job = await engine.submit(JobSpec("get", "lab", ["/cases"], str(out), recursive=True))
        status = await engine.wait(job)
        assert status.state == "done", status
        assert status.files_done == 3
        assert sha256_of(out / "cases" / "big.bin") == want
        assert tree(out / "cases") == tree(remote / "cases")
        assert not list(out.rglob("*.ferrypart"))

        job2 = await engine.submit(JobSpec("put", "lab", [str(out / "cases")], "/back/",
                                           recursive=True))
        assert (await engine.wait(job2)).state == "done"
        assert tree(remote / "back" / "cases") == tree(remote / "cases")
    finally:
        await engine.stop()
    rows = AuditLog().query(event="transfer.file")
    assert len(rows) == 6
    big = [r for r in rows if r.fields["source"].endswith("big.bin")]
    assert big[0].fields["sha256"] == want and big[0].fields["verify"] == "sha256"
