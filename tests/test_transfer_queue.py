"""The persistent queue: control (also from another process), kill -9 and resume, the CLI,
and a round trip against OpenSSH's sshd."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from backend.sites.store import SiteStore
from backend.transfers import JobSpec, Journal
from tests.proxies import Proxy
from tests.transfer_helpers import make_engine, sha256_of, tree, write_random

MiB = 1024 * 1024


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_pause_from_another_process_and_resume_continue_from_offset(
        ferry_home, sftp_server, tmp_path):
    want = write_random(sftp_server.root / "slow.bin", 4 * MiB, seed=1)
    with Proxy(sftp_server.port, rate=1_500_000) as proxy:
        engine = make_engine(lambda: sftp_server.site("lab", port=proxy.port))
        events = []
        engine.subscribe(events.append)
        await engine.start()
        try:
            job = await engine.submit(JobSpec("get", "lab", ["/slow.bin"], str(tmp_path)))
            await until(lambda: engine.job(job).bytes_done > MiB)
            Journal().request_state(job, "paused", ["running"])  # like `ferry queue pause`
            await until(lambda: engine.job(job).state == "paused", timeout=3)
            paused_at = engine.job(job).bytes_done
            await asyncio.sleep(0.5)
            assert engine.job(job).bytes_done == paused_at
            offset = Journal().files(job)[0].offset
            assert offset > 0
            moved_before = proxy.transferred
            proxy.rate = None
            await engine.resume(job)
            status = await engine.wait(job)
        finally:
            await engine.stop()
    assert status.state == "done"
    assert sha256_of(tmp_path / "slow.bin") == want
    assert proxy.transferred - moved_before < 4 * MiB - offset + MiB  # continued, not restarted
    progress = [e for e in events if e.kind == "progress"]
    assert progress and all(e.bytes_total == 4 * MiB for e in progress)


async def test_cancel_removes_partial_files_and_retry_completes(ferry_home, sftp_server,
                                                                tmp_path):
    write_random(sftp_server.root / "c.bin", 4 * MiB, seed=2)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    with Proxy(sftp_server.port, rate=1_500_000) as proxy:
        engine = make_engine(lambda: sftp_server.site("lab", port=proxy.port))
        await engine.start()
        try:
            job = await engine.submit(JobSpec("get", "lab", ["/c.bin"], str(tmp_path)))
            await until(lambda: engine.job(job).bytes_done > 500_000)
            await engine.cancel(job)
            assert (await engine.wait(job)).state == "cancelled"
            assert os.listdir(tmp_path) == []
            proxy.rate = None
            await engine.retry(job)
            assert (await engine.wait(job)).state == "done"
        finally:
            await engine.stop()
    assert sha256_of(tmp_path / "c.bin") == sha256_of(sftp_server.root / "c.bin")


async def test_jobs_wait_their_turn_and_can_be_reordered(ferry_home, sftp_server, tmp_path):
    for i in range(3):
        write_random(sftp_server.root / f"f{i}", 1000, seed=i)
    engine = make_engine(lambda: sftp_server.site("lab", max_parallel=1))
    specs = [JobSpec("get", "lab", [f"/f{i}"], str(tmp_path)) for i in range(3)]
    ids = [await engine.submit(s) for s in specs]
    await engine.move(ids[2], -2)
    assert [j.id for j in engine.jobs()] == [ids[2], ids[0], ids[1]]
    await engine.pause(ids[1])
    order = []
    engine.subscribe(lambda e: order.append(e.job_id) if e.kind == "job" and
                     e.state == "done" else None)
    await engine.start()
    try:
        await engine.wait(ids[2])
        await engine.wait(ids[0])
        assert engine.job(ids[1]).state == "paused"
        await engine.resume(ids[1])
        await engine.wait(ids[1])
    finally:
        await engine.stop()
    assert order == [ids[2], ids[0], ids[1]]


def ferry_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from tui.cli import main; main()", *args]


async def test_kill_9_during_ferry_get_then_rerun_resumes_from_offset(ferry_home, sftp_server,
                                                                      tmp_path):
    want = write_random(sftp_server.root / "big.bin", 6 * MiB, seed=3)
    out = tmp_path / "out"
    out.mkdir()
    with Proxy(sftp_server.port, rate=1_000_000) as proxy:
        SiteStore().add(sftp_server.site("lab", port=proxy.port))
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        proc = await asyncio.create_subprocess_exec(
            *ferry_cmd("get", "lab:/big.bin", str(out), "--json"), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        journal = Journal()

        def checkpointed() -> bool:
            jobs = journal.job_rows()
            return bool(jobs) and any(f.offset > MiB for f in journal.files(jobs[0].id))

        await until(checkpointed, timeout=20)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        job = journal.job_rows()[0]
        assert job.state == "running"  # what a crash leaves behind
        offset = journal.files(job.id)[0].offset
        assert (out / "big.bin.ferrypart").exists() and not (out / "big.bin").exists()

        proxy.rate = None
        before = proxy.transferred
        proc = await asyncio.create_subprocess_exec(
            *ferry_cmd("get", "lab:/big.bin", str(out), "--json"), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert sha256_of(out / "big.bin") == want
    assert proxy.transferred - before < 6 * MiB - offset + MiB
    events = [json.loads(line) for line in stdout.decode().splitlines()]
    assert {e["job_id"] for e in events} == {job.id}  # the same job, adopted
    done = [e for e in events if e["kind"] == "file" and e["state"] == "done"]
    assert done[0]["sha256"] == want
    assert len(journal.job_rows()) == 1


async def test_cli_exit_codes_and_queue_list(ferry_home, sftp_server, tmp_path):
    write_random(sftp_server.root / "ok.txt", 100, seed=4)
    SiteStore().add(sftp_server.site("lab"))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    async def ferry(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *ferry_cmd(*args), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, _ = await ferry("get", "lab:/ok.txt", str(tmp_path))
    assert code == 0 and out.startswith("done") and "sha256:" in out
    code, _, err = await ferry("get", "lab:/ok.txt", "lab:/missing.txt", str(tmp_path / "x/"))
    assert code == 11 and "missing.txt" in err and "1 of 2 files failed" in err
    code, out, _ = await ferry("queue", "list", "--json")
    states = [j["state"] for j in json.loads(out)]
    assert states == ["done", "failed"]
    code, _, err = await ferry("get", "nosuchsite:/x", str(tmp_path))
    assert code == 3 and "nosuchsite" in err
    code, _, err = await ferry("queue", "pause", "99")
    assert code == 2


async def test_round_trip_with_openssh_sshd(ferry_home, sshd, tmp_path):
    src = tmp_path / "study"
    want = write_random(src / "big.zip", 9 * MiB + 5, seed=5)
    for i in range(20):
        write_random(src / "dicom" / f"{i:03}.dcm", 5000 + i, seed=10 + i)
    remote = tmp_path / "remote-home"
    remote.mkdir()
    engine = make_engine(lambda: sshd.site("real"))
    await engine.start()
    try:
        up = await engine.submit(JobSpec("put", "real", [str(src)], str(remote) + "/",
                                         recursive=True))
        assert (await engine.wait(up)).state == "done"
        back = tmp_path / "back"
        back.mkdir()
        down = await engine.submit(JobSpec("get", "real", [str(remote / "study")], str(back),
                                           recursive=True))
        assert (await engine.wait(down)).state == "done"
        files = engine.files(down)
    finally:
        await engine.stop()
    assert tree(back / "study") == tree(src)
    assert sha256_of(back / "study" / "big.zip") == want
    assert {f.verify for f in files} == {"sha256-server"}


async def test_cancel_of_a_paused_upload_from_a_fresh_process_removes_the_server_temp(
        ferry_home, sftp_server, tmp_path):
    """Like `ferry queue cancel JOB` in a new shell: no connection is open in that process,
    yet the partial upload's temp file on the server is removed."""
    src = tmp_path / "up.bin"
    write_random(src, 4 * MiB, seed=8)
    with Proxy(sftp_server.port, rate=1_500_000) as proxy:
        engine = make_engine(lambda: sftp_server.site("lab", port=proxy.port))
        await engine.start()
        try:
            job = await engine.submit(JobSpec("put", "lab", [str(src)], "/up.bin"))
            await until(lambda: engine.job(job).bytes_done > MiB)
            await engine.pause(job)
            await until(lambda: engine.job(job).state == "paused", timeout=3)
        finally:
            await engine.stop()
        temps = [p for p in sftp_server.root.iterdir() if p.name != "up.bin"]
        assert temps and temps[0].name.startswith("up.bin")  # the partial upload is there
        fresh = make_engine(lambda: sftp_server.site("lab", port=proxy.port))
        await fresh.cancel(job)  # never started: it connects just for the cleanup
    assert list(sftp_server.root.iterdir()) == []
    assert Journal().job(job).state == "cancelled"
    assert all(f.temp is None for f in Journal().files(job))


def test_get_from_an_unknown_site_fails_before_queueing_a_job(ferry_home, sftp_server, tmp_path,
                                                             capsys):
    from tui.cli import run

    SiteStore().add(sftp_server.site("lab"))
    assert run(["get", "nosuch:/x", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "no site named nosuch; known: lab" in err and err.count("\n") == 1
    assert run(["put", str(tmp_path), "nosuch:/in"]) == 3
    assert Journal().job_rows() == []  # nothing left in `ferry queue list`
