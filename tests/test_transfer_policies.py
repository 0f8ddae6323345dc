"""File-exists policies, temp-name uploads, empty and sparse files, modes, direct uploads."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from backend.transfers import JobSpec
from tests.proxies import Proxy
from tests.transfer_helpers import make_engine, sha256_of, write_random


async def run(server, spec: JobSpec, site_changes: dict | None = None):
    engine = make_engine(lambda: server.site("lab", **(site_changes or {})))
    await engine.start()
    try:
        job = await engine.submit(spec)
        return await engine.wait(job), engine.files(job)
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("policy", "local_state", "expect"),
    [
        ("overwrite", "same-size-old", "remote"),
        ("skip", "different", "local"),
        ("size", "same-size-old", "local"),
        ("size", "different", "remote"),
        ("resume", "same-size-old", "local"),
        ("resume", "different", "remote"),
        ("newer", "newer-local", "local"),
        ("newer", "older-local", "remote"),
    ],
)
async def test_download_conflict_policies(ferry_home, sftp_server, tmp_path, policy,
                                          local_state, expect):
    remote_sum = write_random(sftp_server.root / "r.txt", 5000, seed=1)
    remote_mtime = os.stat(sftp_server.root / "r.txt").st_mtime
    local = tmp_path / "out" / "r.txt"
    size = 5000 if local_state in ("same-size-old", "newer-local", "older-local") else 1234
    local_sum = write_random(local, size, seed=2)
    when = {"newer-local": remote_mtime + 100, "older-local": remote_mtime - 100}.get(
        local_state, remote_mtime - 100)
    os.utime(local, (when, when))
    status, files = await run(sftp_server, JobSpec("get", "lab", ["/r.txt"], str(local.parent),
                                                   on_conflict=policy))
    assert status.state == "done"
    assert sha256_of(local) == (remote_sum if expect == "remote" else local_sum)
    assert files[0].state == ("done" if expect == "remote" else "skipped")


async def test_rename_policy_keeps_both_files_up_and_down(ferry_home, sftp_server, tmp_path):
    write_random(sftp_server.root / "in" / "study.zip", 3000, seed=3)
    write_random(tmp_path / "study.zip", 10, seed=4)
    status, files = await run(sftp_server, JobSpec("get", "lab", ["/in/study.zip"],
                                                   str(tmp_path), on_conflict="rename"))
    assert files[0].destination.endswith("study (1).zip")
    assert sha256_of(tmp_path / "study (1).zip") == sha256_of(sftp_server.root / "in/study.zip")
    assert os.path.getsize(tmp_path / "study.zip") == 10
    status, files = await run(sftp_server, JobSpec("put", "lab", [str(tmp_path / "study.zip")],
                                                   "/in/", on_conflict="rename"))
    assert status.state == "done"
    assert os.path.getsize(sftp_server.root / "in" / "study (1).zip") == 10
    assert os.path.getsize(sftp_server.root / "in" / "study.zip") == 3000


async def test_upload_skip_and_overwrite(ferry_home, sftp_server, tmp_path):
    write_random(sftp_server.root / "drop" / "a.bin", 100, seed=5)
    src = tmp_path / "a.bin"
    want = write_random(src, 200, seed=6)
    _, files = await run(sftp_server, JobSpec("put", "lab", [str(src)], "/drop/",
                                              on_conflict="skip"))
    assert files[0].state == "skipped"
    assert os.path.getsize(sftp_server.root / "drop" / "a.bin") == 100
    assert sorted(os.listdir(sftp_server.root / "drop")) == ["a.bin"]  # no temp file left
    (sftp_server.root / "drop" / "sub").mkdir()
    (tmp_path / "sub").write_bytes(b"x")
    _, files = await run(sftp_server, JobSpec("put", "lab", [str(tmp_path / "sub")], "/drop/",
                                              on_conflict="overwrite"))
    assert files[0].state == "failed" and "folder" in (files[0].error or "")
    assert sorted(os.listdir(sftp_server.root / "drop")) == ["a.bin", "sub"]
    _, files = await run(sftp_server, JobSpec("put", "lab", [str(src)], "/drop/",
                                              on_conflict="overwrite"))
    assert files[0].state == "done"
    assert sha256_of(sftp_server.root / "drop" / "a.bin") == want


async def test_upload_appears_under_its_final_name_only_when_complete(ferry_home, sftp_server,
                                                                      tmp_path):
    src = tmp_path / "case.zip"
    want = write_random(src, 3 * 1024 * 1024, seed=7)
    inbox = sftp_server.root / "input"
    inbox.mkdir()
    seen: list[tuple[str, int]] = []
    stop = asyncio.Event()

    async def watch() -> None:  # a provider's folder watcher
        while not stop.is_set():
            for entry in os.scandir(inbox):
                seen.append((entry.name, entry.stat().st_size))
            await asyncio.sleep(0.005)

    with Proxy(sftp_server.port, rate=3_000_000) as proxy:  # slow enough to watch it happen
        watcher = asyncio.ensure_future(watch())
        status, _ = await run(sftp_server, JobSpec("put", "lab", [str(src)], "/input/"),
                              {"port": proxy.port})
        stop.set()
        await watcher
    assert status.state == "done"
    assert sha256_of(inbox / "case.zip") == want
    partial_sizes = {size for name, size in seen if name == "case.zip.ferrypart"}
    assert partial_sizes, "the upload was never seen in progress"
    assert {size for name, size in seen if name == "case.zip"} <= {3 * 1024 * 1024}


async def test_direct_upload_mode_writes_the_final_name(ferry_home, sftp_server, tmp_path):
    src = tmp_path / "d.bin"
    want = write_random(src, 70_000, seed=8)
    status, files = await run(sftp_server, JobSpec("put", "lab", [str(src)], "/d.bin"),
                              {"upload_mode": "direct"})
    assert status.state == "done" and files[0].verify == "sha256-server"
    assert sha256_of(sftp_server.root / "d.bin") == want


async def test_empty_and_sparse_files_round_trip(ferry_home, sftp_server, tmp_path):
    folder = sftp_server.root / "sparse"
    folder.mkdir()
    (folder / "empty").write_bytes(b"")
    with open(folder / "holey.img", "wb") as fh:
        fh.write(b"head")
        fh.truncate(48 * 1024 * 1024)  # a 48 MiB file that is mostly a hole
        fh.seek(48 * 1024 * 1024 - 4)
        fh.write(b"tail")
    out = tmp_path / "out"
    out.mkdir()
    status, files = await run(sftp_server, JobSpec("get", "lab", ["/sparse"], str(out),
                                                   recursive=True))
    assert status.state == "done", files
    assert (out / "sparse" / "empty").read_bytes() == b""
    assert sha256_of(out / "sparse" / "holey.img") == sha256_of(folder / "holey.img")
    status, _ = await run(sftp_server, JobSpec("put", "lab", [str(out / "sparse")], "/back/",
                                               recursive=True))
    assert status.state == "done"
    assert sha256_of(sftp_server.root / "back/sparse/holey.img") == sha256_of(folder /
                                                                              "holey.img")
    assert (sftp_server.root / "back/sparse/empty").stat().st_size == 0


async def test_downloaded_modes_are_never_setuid_or_world_writable(ferry_home, sftp_server,
                                                                   tmp_path):
    f = sftp_server.root / "tool"
    write_random(f, 10, seed=9)
    os.chmod(f, 0o6777)
    status, _ = await run(sftp_server, JobSpec("get", "lab", ["/tool"], str(tmp_path)))
    assert status.state == "done"
    mode = stat.S_IMODE(os.stat(tmp_path / "tool").st_mode)
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o022)


async def test_missing_source_fails_that_file_and_the_rest_arrive(ferry_home, sftp_server,
                                                                 tmp_path):
    write_random(sftp_server.root / "here.txt", 10, seed=10)
    status, files = await run(sftp_server, JobSpec("get", "lab", ["/here.txt", "/gone.txt"],
                                                   str(tmp_path)))
    assert status.state == "failed" and status.files_failed == 1
    assert (tmp_path / "here.txt").exists()
    assert "no such file" in next(f.error for f in files if f.state == "failed")
