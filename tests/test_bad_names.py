"""Names that are not valid UTF-8, and the caps on recursive transfers (issue 12, 7 and 8).

Real servers: OpenSSH sshd serving this machine's file system, where a file called
``bad\\xffname`` (one byte 0xff) is made with a bytes path; and an in-process asyncssh server
whose ``/endless`` folder lists ten subfolders in every folder, for ever.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from backend import remote, ssh
from backend.demo.server import start_sftp_server
from backend.errors import LimitExceededError, UnsafeNameError
from backend.limits import TreeBudget, TreeLimits
from backend.names import decode_name, display_name, encode_name, validate_name
from backend.sites.store import SiteStore
from backend.sources import RemoteSource
from tests.hostile import HOSTILE_NAMES
from tests.servers import InProcessServer, write_private_key

ROOT = Path(__file__).resolve().parent.parent
BAD = b"bad\xffname"  # Latin-1 "bad" + 0xff + "name": not UTF-8
SHOWN = "bad\\xffname"  # how Ferry spells it everywhere


def ferry(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        capture_output=True, env=env, timeout=timeout, cwd=ROOT,
    )


async def aferry(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """``ferry`` in a subprocess while this event loop keeps serving an in-process server."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tui.cli import main; main()", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def write_raw(folder: Path, name: bytes, data: bytes) -> None:
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def raw_names(folder: Path) -> set[bytes]:
    return set(os.listdir(os.fsencode(folder)))


@pytest.fixture
def study(sshd, tmp_path: Path, ferry_home: Path) -> Path:
    """A folder on the real sshd: good files, a subfolder, and one name that is not UTF-8."""
    folder = tmp_path / "served" / "study"
    (folder / "series").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(b"A" * 1000)
    (folder / "series" / "IM0001.dcm").write_bytes(b"I" * 2000)
    write_raw(folder, BAD, b"latin-1 named file")
    write_raw(folder / "series", b"caf\xe9.dcm", b"cafe")
    SiteStore().add(sshd.site("real", remote_dir=str(folder.parent)))
    return folder


# -- finding 7: names that are not UTF-8 ------------------------------------------------------


def test_the_spelling_is_reversible_and_cannot_pass_for_a_real_name() -> None:
    for raw in (BAD, b"caf\xe9", b"\xc3", b"a\xed\xb3\xbfb", b"\\\xff", "é.dcm".encode()):
        assert encode_name(decode_name(raw)) == raw
    assert decode_name(BAD) == SHOWN
    # a backslash the server really sends is spelled \x5c and refused: no real name can be
    # mistaken for an escape, and every hostile name stays refused
    assert decode_name(b"bad\\xffname") == "bad\\x5cxffname"
    for hostile in [*HOSTILE_NAMES, b"bad\\xffname", b"\\\xff", b"esc\x1b[2J\xff", b"\xc2\x9b2J"]:
        with pytest.raises(UnsafeNameError):
            validate_name(hostile)
    assert validate_name(BAD) == SHOWN
    # a raw C1 byte (0x9b, CSI in 8-bit terminals) is shown as four printable characters
    assert display_name(decode_name(b"x\x9b31m")) == "x\\x9b31m"


def test_ls_lists_a_folder_holding_a_name_that_is_not_utf8(study: Path) -> None:
    out = ferry("ls", "real:study")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode("ascii").splitlines()  # nothing but ASCII reaches the terminal
    assert [line.split()[-1] for line in lines] == ["series/", "a.dcm", SHOWN]
    assert out.stderr == b""

    out = ferry("ls", "real:study", "--json")
    assert out.returncode == 0, out.stderr
    entries = {e["name"]: e for e in json.loads(out.stdout)["entries"]}
    assert set(entries) == {"series", "a.dcm", SHOWN}
    assert bytes.fromhex(entries[SHOWN]["raw_name_hex"]) == BAD
    assert entries[SHOWN]["name_is_utf8"] is False and entries[SHOWN]["size"] == 18
    assert entries["a.dcm"]["name_is_utf8"] is True
    assert bytes.fromhex(entries["a.dcm"]["raw_name_hex"]) == b"a.dcm"


def test_get_r_downloads_every_file_and_saves_the_bad_name_as_spelled(study: Path,
                                                                      tmp_path: Path) -> None:
    out_dir = tmp_path / "down"
    got = ferry("get", "-r", "real:study", str(out_dir) + "/")
    assert got.returncode == 0, got.stderr
    local = out_dir / "study"
    assert (local / "a.dcm").read_bytes() == b"A" * 1000
    assert (local / "series" / "IM0001.dcm").read_bytes() == b"I" * 2000
    assert (local / SHOWN).read_bytes() == b"latin-1 named file"  # the name holds "\xff" text
    assert (local / "series" / "caf\\xe9.dcm").read_bytes() == b"cafe"
    assert sorted(p.name for p in local.iterdir()) == ["a.dcm", SHOWN, "series"]
    text = got.stdout.decode("ascii")
    line = next(x for x in text.splitlines() if SHOWN in x)
    assert line.startswith("done") and "not UTF-8" in line

    # the spelling typed back names the file, e.g. to fetch just that one
    one = ferry("get", f"real:study/{SHOWN}", str(tmp_path / "one") + "/")
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "one" / SHOWN).read_bytes() == b"latin-1 named file"

    # and back: the escaped local name is uploaded under the server's original bytes
    up = study.parent / "again"
    put = ferry("put", str(local / SHOWN), "real:again/")
    assert put.returncode == 0, put.stderr
    assert raw_names(up) == {BAD}


async def test_rename_and_delete_of_the_bad_name_through_the_tui_source(sshd, study: Path
                                                                         ) -> None:
    write_raw(study, b"also\xfe", b"x")
    bad_dir = os.fsencode(study) + b"/dir\xfe"
    os.mkdir(bad_dir)
    write_raw(Path(os.fsdecode(bad_dir)), b"in\xff", b"y")
    site = SiteStore().get("real")
    conn = await ssh.connect(site)
    source = await RemoteSource.open(site, conn)
    try:
        listing = await source.list(str(study))
        assert {e.name for e in listing.entries} >= {SHOWN, "also\\xfe", "dir\\xfe"}
        await source.rename(str(study), SHOWN, "renamed.dcm")
        assert (study / "renamed.dcm").read_bytes() == b"latin-1 named file"
        assert BAD not in raw_names(study)
        assert await source.delete(str(study / "also\\xfe")) == 1
        plan = await source.plan_delete(str(study / "dir\\xfe"))
        assert [i.relpath for i in plan] == ["dir\\xfe", "dir\\xfe/in\\xff"]
        assert await source.delete(str(study / "dir\\xfe")) == 2
    finally:
        await source.close()
    assert raw_names(study) == {b"a.dcm", b"series", b"renamed.dcm"}


def test_put_r_skips_a_local_name_that_is_not_utf8_and_uploads_the_rest(
        study: Path, tmp_path: Path) -> None:
    src = tmp_path / "outgoing"
    src.mkdir()
    (src / "fine.dcm").write_bytes(b"fine")
    write_raw(src, b"local\xff.dcm", b"no")
    put = ferry("put", "-r", str(src), "real:up/")
    assert put.returncode == 0, put.stderr
    assert raw_names(study.parent / "up" / "outgoing") == {b"fine.dcm"}
    skipped = next(x for x in put.stdout.decode("ascii").splitlines() if "local\\xff" in x)
    assert skipped.startswith("skipped") and "not valid UTF-8" in skipped


# -- finding 8: caps on recursive transfers ---------------------------------------------------


class EndlessTreeServer(asyncssh.SFTPServer):
    """Serves its root, except that ``/endless`` and every folder below it list ten
    subfolders ``d0``..``d9``, for ever."""

    marker = b"/endless"  # as the client names it (the server maps it under its root)

    def _endless(self, path: bytes) -> bool:
        return path == self.marker or path.startswith(self.marker + b"/")

    def _dir(self) -> asyncssh.SFTPAttrs:
        return asyncssh.SFTPAttrs(permissions=0o040755, size=0, mtime=int(time.time()))

    def stat(self, path: bytes):  # type: ignore[no-untyped-def, override]
        return self._dir() if self._endless(path) else super().stat(path)

    def lstat(self, path: bytes):  # type: ignore[no-untyped-def, override]
        return self._dir() if self._endless(path) else super().lstat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        if not self._endless(path):
            async for name in super().scandir(path):
                yield name
            return
        for i in range(10):
            yield asyncssh.SFTPName(f"d{i}".encode(), b"", self._dir())


@pytest.fixture
async def endless(tmp_path, host_key, client_key, ferry_home) -> AsyncIterator[InProcessServer]:
    root = tmp_path / "endless-root"
    root.mkdir()
    server = await start_sftp_server(root, host_key=host_key, authorized_keys=[client_key],
                                     sftp_factory=EndlessTreeServer)
    served = InProcessServer(server=server,
                             client_key_path=write_private_key(client_key, tmp_path / "id_e"))
    SiteStore().add(served.site("gen"))
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()


def local_folders(top: Path) -> int:
    return sum(len(dirs) for _root, dirs, _files in os.walk(top))


async def test_get_r_of_an_endless_tree_stops_at_the_depth_cap_creating_nothing(
        endless, tmp_path: Path) -> None:
    out = tmp_path / "got"
    began = time.monotonic()
    code, _, err = await aferry("get", "-r", "gen:/endless", str(out) + "/")
    assert time.monotonic() - began < 60
    assert code == 16, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nest deeper than 64 levels" in lines[0], err
    assert "--max-depth N" in lines[0] and "gen:/endless" in lines[0]
    assert not out.exists() or local_folders(out) == 0


async def test_the_entry_cap_stops_an_endless_tree_and_the_flags_raise_the_caps(
        endless, tmp_path: Path) -> None:
    out = tmp_path / "got"
    code, _, err = await aferry("get", "-r", "gen:/endless", str(out) + "/",
                                "--max-depth", "1000", "--max-entries", "500")
    assert code == 16, err
    assert "more than 500 entries under gen:/endless" in err and "--max-entries N" in err, err
    assert not out.exists() or local_folders(out) == 0
    code, _, err = await aferry("get", "-r", "gen:/endless", str(out) + "/",
                                "--max-depth", "1000", "--max-entries", "3000")
    assert code == 16 and "more than 3,000 entries" in err, err  # the raised cap was used
    assert not out.exists() or local_folders(out) == 0

    finite = endless.root / "finite"
    (finite / "sub").mkdir(parents=True)
    (finite / "sub" / "x.bin").write_bytes(b"x" * 3000)
    (finite / "y.bin").write_bytes(b"y" * 3000)
    code, _, err = await aferry("get", "-r", "gen:/finite", str(out) + "/", "--max-bytes", "5KiB")
    assert code == 16 and "total more than 5.0 KiB" in err and "--max-bytes SIZE" in err, err
    assert not (out / "finite").exists()
    code, _, err = await aferry("get", "-r", "gen:/finite", str(out) + "/", "--max-bytes", "6KiB",
                                "--max-entries", "3")
    assert code == 0, err
    assert (out / "finite" / "sub" / "x.bin").read_bytes() == b"x" * 3000
    code, _, err = await aferry("get", "-r", "gen:/finite", str(out) + "/", "--max-entries", "0")
    assert code == 2 and "--max-entries must be at least 1" in err


async def test_put_r_stops_at_the_cap_before_creating_remote_folders(endless,
                                                                     tmp_path: Path) -> None:
    src = tmp_path / "tree"
    for i in range(5):
        (src / f"s{i}").mkdir(parents=True)
        (src / f"s{i}" / "f.bin").write_bytes(b"z")
    code, _, err = await aferry("put", "-r", str(src), "gen:/up/", "--max-entries", "6")
    assert code == 16 and "more than 6 entries" in err, err
    assert not (endless.root / "up").exists()


async def test_a_listing_that_never_ends_is_cut_at_the_cap(endless) -> None:
    class Endless(asyncssh.SFTPServer):
        async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
            i = 0
            while True:
                i += 1
                yield asyncssh.SFTPName(f"f{i}".encode(), b"",
                                        asyncssh.SFTPAttrs(permissions=0o100644, size=1))

    server = await start_sftp_server(endless.root, host_key=endless.server.host_key,
                                     sftp_factory=Endless,
                                     authorized_keys=[asyncssh.read_private_key(
                                         endless.client_key_path)])
    try:
        site = InProcessServer(server=server, client_key_path=endless.client_key_path).site()
        async with ssh.sftp_session(site) as (_c, sftp):
            with pytest.raises(LimitExceededError, match="more than 2,000 entries"):
                await remote.list_dir(sftp, "/", budget=TreeBudget(TreeLimits(max_entries=2000)))
    finally:
        server.close()
        await server.wait_closed()


async def test_every_server_of_the_matrix_lists_reads_and_renames_the_bad_name(
        matrix_server, ferry_home) -> None:
    write_raw(matrix_server.root, BAD, b"abc")
    (matrix_server.root / "good.txt").write_text("g")
    async with ssh.sftp_session(matrix_server.site("m")) as (_c, sftp):
        listing = await remote.list_dir(sftp, matrix_server.remote_dir)
        assert {e.name for e in listing.entries} >= {SHOWN, "good.txt"}
        assert await remote.read_head(sftp, matrix_server.remote(SHOWN)) == (b"abc", False)
        if matrix_server.kind not in ("readonly", "norename"):
            await remote.rename(sftp, matrix_server.remote_dir, SHOWN, "fixed.txt")
            assert (matrix_server.root / "fixed.txt").read_bytes() == b"abc"
            assert BAD not in raw_names(matrix_server.root)
