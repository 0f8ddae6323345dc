"""Server-side SHA-256 verification against OpenSSH: kept shells, batching, odd names, fallback."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from backend.audit import AuditLog
from backend.errors import IntegrityError
from backend.transfers import JobSpec
from backend.transfers.copier import Plan, _verify_download
from backend.transfers.journal import FileRow
from backend.transfers.pool import SitePool
from backend.transfers.verify import RemoteHasher
from tests.transfer_helpers import connector_for, make_engine, sha256_of, tree, write_random

ODD_NAMES = ["plain.dcm", "with space.dcm", "it's.dcm", "-starts-with-dash", "back\\slash",
             "new\nline", "$(touch pwned)", "ünïcode.dcm"]


@pytest.fixture
async def hasher(sshd):
    pool = SitePool("real", connector_for(lambda: sshd.site("real")))
    await pool.ensure_site()
    hasher = RemoteHasher(pool)
    try:
        yield hasher
    finally:
        hasher.close()
        await pool.close()


async def test_many_concurrent_requests_each_get_their_own_files_digest(hasher, tmp_path):
    folder = tmp_path / "files"
    want = {}
    for i in range(150):
        want[str(folder / f"f{i:03}")] = write_random(folder / f"f{i:03}", 1000 + i, seed=i)
    for i, name in enumerate(ODD_NAMES):
        want[str(folder / name)] = write_random(folder / name, 500 + i, seed=1000 + i)
    paths = list(want)
    got = await asyncio.gather(*(hasher.sha256(p) for p in paths))
    assert dict(zip(paths, got, strict=True)) == want
    assert not any(d.joinpath("pwned").exists() for d in (folder, Path.home(), Path.cwd()))
    assert hasher._shells_ok is True  # answered by the kept shells, not one exec per batch


async def test_a_missing_file_in_a_batch_costs_only_its_own_digest(hasher, tmp_path):
    good = [tmp_path / f"g{i}" for i in range(20)]
    want = [write_random(p, 300, seed=i) for i, p in enumerate(good)]
    paths = [str(p) for p in good]
    paths.insert(7, str(tmp_path / "missing"))
    got = await asyncio.gather(*(hasher.sha256(p) for p in paths))
    assert got[7] is None
    assert got[:7] + got[8:] == want


async def test_a_changed_file_is_caught_by_the_servers_digest(hasher, tmp_path, sshd):
    remote = tmp_path / "scan.dcm"
    write_random(remote, 200_000, seed=3)
    local = tmp_path / "local.part"
    local.write_bytes(remote.read_bytes())
    ours = sha256_of(local)
    data = bytearray(remote.read_bytes())
    data[123_456] ^= 1  # one bit differs on the server
    remote.write_bytes(bytes(data))
    site = sshd.site("real")
    plan = Plan(site=site, pool=hasher._pool, hasher=hasher, on_conflict="overwrite",
                verify="sha256")
    row = FileRow(id=1, job_id=1, src=str(remote), dst=str(local), size=len(data), mtime=None,
                  mode=None, state="running", bytes_done=0, offset=0, temp=None, error=None,
                  sha256=None, verify=None)
    theirs = asyncio.ensure_future(hasher.sha256(str(remote)))
    lane = await hasher._pool.lane()
    with pytest.raises(IntegrityError, match="SHA-256 differs"):
        await _verify_download(plan, lane, row, -1, len(data), ours, theirs, False)


async def test_many_small_files_both_ways_through_openssh_are_sha256_verified(
        ferry_home, sshd, tmp_path):
    src = tmp_path / "study"
    for i in range(60):
        write_random(src / f"IM{i:03}.dcm", 5000 + 37 * i, seed=i)
    write_random(src / "with space's.dcm", 999, seed=99)
    engine = make_engine(lambda: sshd.site("real"))
    await engine.start()
    try:
        up = await engine.submit(JobSpec("put", "real", [str(src)], str(tmp_path / "remote") + "/",
                                         recursive=True))
        assert (await engine.wait(up)).state == "done"
        down = await engine.submit(JobSpec("get", "real", [str(tmp_path / "remote" / "study")],
                                           str(tmp_path / "back") + "/", recursive=True))
        assert (await engine.wait(down)).state == "done"
    finally:
        await engine.stop()
    assert tree(tmp_path / "back" / "study") == tree(src)
    rows = AuditLog().query(event="transfer.file")
    assert len(rows) == 2 * 61
    assert {r.fields["verify"] for r in rows} == {"sha256-server"}
    for r in rows:
        name = Path(r.fields["source"]).name
        assert r.fields["sha256"] == hashlib.sha256((src / name).read_bytes()).hexdigest()
