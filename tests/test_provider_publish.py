"""Publishing uploads on provider servers (issue 12, findings 1 and 9): an overwrite never
deletes the only copy, each failing step is undone and named, the source mtime is kept where
the server allows, and the default policy does not skip a same-size file with other content."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from backend.demo.server import start_sftp_server
from backend.sites.store import SiteStore
from backend.transfers import JobSpec
from tests.servers import InProcessServer, write_private_key
from tests.transfer_helpers import make_engine

OLD = b"old settings: keep me\n" * 50
ASIDE_INFIX = ".ferry-old-"  # backend/transfers/copier.py: where an old file waits
NEW = b"new settings, longer than the old ones\n" * 80


async def put(server, src: Path, folder: str, policy: str, name: str = "lab"):
    engine = make_engine(lambda: server.site(name))
    await engine.start()
    try:
        job = await engine.submit(JobSpec("put", name, [str(src)], folder, on_conflict=policy))
        return await engine.wait(job), engine.files(job)
    finally:
        await engine.stop()


def leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n != "conf.txt")


# -- finding 1: publish without posix-rename --------------------------------------------------


@pytest.mark.parametrize("kind", ["openssh", "noposix", "s3gateway", "norename"])
async def test_overwrite_keeps_the_old_file_until_the_new_one_is_in_place(
        ferry_home, server_of_kind, tmp_path, kind):
    async with server_of_kind(kind) as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        src = tmp_path / "conf.txt"
        src.write_bytes(NEW)
        _, files = await put(s, src, s.remote("keep") + "/", "overwrite")
        if kind == "norename":  # every rename refused: the old file stays, the upload beside it
            assert files[0].state == "failed"
            assert (keep / "conf.txt").read_bytes() == OLD
            assert (keep / "conf.txt.ferrypart").read_bytes() == NEW
            assert leftovers(keep) == ["conf.txt.ferrypart"]
            error = files[0].error or ""
            assert "conf.txt kept as it was; the upload is in conf.txt.ferrypart" in error
            assert "refused rename" in error and "\n" not in error
        else:
            assert files[0].state == "done", files[0].error
            assert files[0].error is None  # nothing to report: no old copy left behind
            assert (keep / "conf.txt").read_bytes() == NEW
            assert leftovers(keep) == []  # no temp, no aside copy


class _Faults:
    """Which operations the faulty server refuses: the Nth ``rename`` (1-based) / ``remove``
    of an aside copy; what it was asked, in order."""

    def __init__(self, renames: set[int] = frozenset(), remove: bool = False) -> None:  # type: ignore[assignment]
        self.renames = set(renames)
        self.remove = remove
        self.seen: list[str] = []


def _faulty_factory(faults: _Faults):
    class FaultySFTPServer(asyncssh.SFTPServer):
        """No posix-rename (like a plain SFTPv3 server); refuses what ``faults`` says."""

        def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
            raise asyncssh.SFTPOpUnsupported("posix-rename is not supported")

        def rename(self, oldpath: bytes, newpath: bytes) -> None:
            faults.seen.append(f"rename {os.path.basename(oldpath).decode()} "
                               f"{os.path.basename(newpath).decode()}")
            if len([x for x in faults.seen if x.startswith("rename")]) in faults.renames:
                raise asyncssh.SFTPPermissionDenied("injected: rename refused")
            if os.path.lexists(self.map_path(newpath)):
                raise asyncssh.SFTPFailure("target exists")  # SFTPv3: rename never replaces
            super().rename(oldpath, newpath)

        def remove(self, path: bytes) -> None:
            faults.seen.append(f"remove {os.path.basename(path).decode()}")
            if faults.remove and ASIDE_INFIX.encode() in path:
                raise asyncssh.SFTPPermissionDenied("injected: remove refused")
            super().remove(path)

    return FaultySFTPServer


@pytest.fixture
async def faulty_server(tmp_path: Path, host_key, client_key):
    """``async with faulty_server(faults) as s`` — an in-process server refusing ``faults``."""
    import contextlib

    @contextlib.asynccontextmanager
    async def start(faults: _Faults) -> AsyncIterator[InProcessServer]:
        running = await start_sftp_server(tmp_path / "remote", host_key=host_key,
                                          authorized_keys=[client_key], allow_exec=False,
                                          sftp_factory=_faulty_factory(faults))
        try:
            yield InProcessServer(server=running,
                                  client_key_path=write_private_key(client_key,
                                                                    tmp_path / "id_faulty"))
        finally:
            running.close()
            await running.wait_closed()

    return start


def _aside(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if ASIDE_INFIX in n]


async def test_first_rename_refused_leaves_everything_as_it_was(ferry_home, faulty_server,
                                                                tmp_path):
    faults = _Faults(renames={1})  # conf.txt -> aside
    async with faulty_server(faults) as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        (tmp_path / "conf.txt").write_bytes(NEW)
        _, files = await put(s, tmp_path / "conf.txt", "/keep/", "overwrite")
    assert files[0].state == "failed"
    assert (keep / "conf.txt").read_bytes() == OLD
    assert (keep / "conf.txt.ferrypart").read_bytes() == NEW and _aside(keep) == []
    assert files[0].error == ("/keep/conf.txt kept as it was; the upload is in "
                              "conf.txt.ferrypart beside it (the server refused rename: "
                              "injected: rename refused)")
    assert not any(step.startswith("remove conf.txt") for step in faults.seen)


async def test_upload_rename_refused_puts_the_old_file_back(ferry_home, faulty_server, tmp_path):
    faults = _Faults(renames={2})  # conf.txt -> aside works, the upload -> conf.txt is refused
    async with faulty_server(faults) as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        (tmp_path / "conf.txt").write_bytes(NEW)
        _, files = await put(s, tmp_path / "conf.txt", "/keep/", "overwrite")
    assert files[0].state == "failed"
    assert (keep / "conf.txt").read_bytes() == OLD  # moved back from the aside name
    assert (keep / "conf.txt.ferrypart").read_bytes() == NEW and _aside(keep) == []
    assert files[0].error is not None
    assert files[0].error.startswith("/keep/conf.txt kept as it was; the upload is in "
                                     "conf.txt.ferrypart beside it (the server refused to "
                                     "rename it into place: injected: rename refused)")
    renames = [x for x in faults.seen if x.startswith("rename")]
    assert renames[0].startswith("rename conf.txt conf.txt" + ASIDE_INFIX)
    assert renames[2].startswith("rename conf.txt" + ASIDE_INFIX) and renames[2].endswith(
        " conf.txt")


async def test_when_putting_back_fails_too_the_message_names_both_copies(ferry_home,
                                                                         faulty_server, tmp_path):
    faults = _Faults(renames={2, 3})
    async with faulty_server(faults) as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        (tmp_path / "conf.txt").write_bytes(NEW)
        _, files = await put(s, tmp_path / "conf.txt", "/keep/", "overwrite")
    assert files[0].state == "failed"
    [aside] = _aside(keep)
    assert (keep / aside).read_bytes() == OLD  # nothing lost: the old file is under that name
    assert (keep / "conf.txt.ferrypart").read_bytes() == NEW
    assert not (keep / "conf.txt").exists()
    error = files[0].error or ""
    assert error.startswith(f"/keep/conf.txt is missing: the old file is in {aside} and the "
                            "upload is in conf.txt.ferrypart beside it")
    assert "\n" not in error
    # refused means refused: no retry loop renamed things further behind the message's back
    assert len([x for x in faults.seen if x.startswith("rename")]) == 3


async def test_old_copy_that_cannot_be_removed_is_reported_not_failed(ferry_home, faulty_server,
                                                                      tmp_path):
    faults = _Faults(remove=True)
    async with faulty_server(faults) as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        (tmp_path / "conf.txt").write_bytes(NEW)
        status, files = await put(s, tmp_path / "conf.txt", "/keep/", "overwrite")
    assert status.state == "done" and files[0].state == "done"
    assert (keep / "conf.txt").read_bytes() == NEW
    [aside] = _aside(keep)
    assert (keep / aside).read_bytes() == OLD
    assert not (keep / "conf.txt.ferrypart").exists()
    assert files[0].error == (f"replaced /keep/conf.txt; the old copy could not be removed and "
                              f"is in {aside} (injected: remove refused)")


def ferry_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from tui.cli import main; main()", *args]


async def test_cli_overwrite_on_a_server_refusing_renames_exits_11_with_one_line(
        ferry_home, server_of_kind, tmp_path):
    async with server_of_kind("norename") as s:
        keep = s.root / "keep"
        keep.mkdir()
        (keep / "conf.txt").write_bytes(OLD)
        (tmp_path / "conf.txt").write_bytes(NEW)
        SiteStore().add(s.site("nr"))
        proc = await asyncio.create_subprocess_exec(
            *ferry_cmd("put", str(tmp_path / "conf.txt"), "nr:" + s.remote("keep") + "/",
                       "--on-conflict", "overwrite"),
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 11  # docs/cli.md: a file failed
    assert (keep / "conf.txt").read_bytes() == OLD
    lines = err.decode().splitlines()
    assert lines[0].startswith("ferry: error: job") and "1 of 1 files failed" in lines[0]
    assert len(lines) == 2 and "Traceback" not in err.decode()
    assert lines[1] == (f"  {tmp_path / 'conf.txt'}: {s.remote('keep', 'conf.txt')} kept as it "
                        "was; the upload is in conf.txt.ferrypart beside it (the server "
                        "refused rename: Permission denied)")
    assert out.decode().startswith("failed ")


# -- finding 9: the source mtime ----------------------------------------------------------------


PAST = 1_600_000_000  # 2020-09-13


@pytest.mark.parametrize("kind", ["openssh", "s3gateway"])
async def test_upload_keeps_the_source_mtime_where_the_server_allows(ferry_home,
                                                                     server_of_kind, tmp_path,
                                                                     kind, caplog):
    caplog.set_level(logging.DEBUG, logger="ferry.transfers")
    async with server_of_kind(kind) as s:
        (s.root / "in").mkdir()
        src = tmp_path / "study.zip"
        src.write_bytes(NEW)
        os.utime(src, (PAST, PAST))
        status, files = await put(s, src, s.remote("in") + "/", "resume")
        assert status.state == "done" and files[0].state == "done"
        assert (s.root / "in" / "study.zip").read_bytes() == NEW
        mtime = os.stat(s.root / "in" / "study.zip").st_mtime
        if kind == "openssh":
            assert mtime == PAST
        else:  # no setstat: the upload still succeeds, with the server's own time
            assert mtime > PAST + 10**7
            assert files[0].error is None
            assert "did not keep the mtime: SETSTAT is not supported" in caplog.text


async def test_newer_policy_compares_against_the_real_source_mtime(ferry_home, server_of_kind,
                                                                   tmp_path):
    async with server_of_kind("openssh") as s:
        (s.root / "in").mkdir()
        src = tmp_path / "study.zip"
        src.write_bytes(OLD)
        os.utime(src, (PAST, PAST))
        await put(s, src, s.remote("in") + "/", "resume")
        remote = s.root / "in" / "study.zip"
        # an older local copy: kept out
        src.write_bytes(NEW)
        os.utime(src, (PAST - 3600, PAST - 3600))
        _, files = await put(s, src, s.remote("in") + "/", "newer")
        assert files[0].state == "skipped" and remote.read_bytes() == OLD
        # a copy edited after the first upload (still long ago): sent, although the upload
        # itself happened later than that edit
        os.utime(src, (PAST + 3600, PAST + 3600))
        _, files = await put(s, src, s.remote("in") + "/", "newer")
        assert files[0].state == "done" and remote.read_bytes() == NEW
        assert os.stat(remote).st_mtime == PAST + 3600


# -- finding 9: same size, other content ------------------------------------------------------


def _study(seed: int, size: int = 200_000) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(size))


@pytest.mark.parametrize("kind", ["openssh", "s3gateway", "proftpd"])
async def test_resume_replaces_a_same_size_file_with_other_content(ferry_home, server_of_kind,
                                                                   tmp_path, kind):
    async with server_of_kind(kind) as s:
        inbox = s.root / "in"
        inbox.mkdir()
        old, new = _study(1), _study(2)
        if kind == "openssh":
            # the server hashes: a difference far before the tail is found too
            new = bytearray(old)
            new[10] ^= 0xFF
            new = bytes(new)
        (inbox / "study.zip").write_bytes(old)
        (inbox / "same.zip").write_bytes(old)
        (tmp_path / "study.zip").write_bytes(new)
        (tmp_path / "same.zip").write_bytes(old)
        assert len(new) == len(old)
        # `size` is sizes only, as its name says: the same-size different file is kept
        _, files = await put(s, tmp_path / "study.zip", s.remote("in") + "/", "size")
        assert files[0].state == "skipped"
        assert (inbox / "study.zip").read_bytes() == old
        _, files = await put(s, tmp_path / "study.zip", s.remote("in") + "/", "resume")
        assert files[0].state == "done", files[0].error
        assert (inbox / "study.zip").read_bytes() == new
        _, files = await put(s, tmp_path / "same.zip", s.remote("in") + "/", "resume")
        assert files[0].state == "skipped"
        assert sorted(os.listdir(inbox)) == ["same.zip", "study.zip"]  # no temp, no aside
