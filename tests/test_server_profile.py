"""Server profiles (backend/sites/profile.py) against the real provider matrix: detection finds
each kind's quirks and leaves nothing behind, the profile is remembered and shown by
``ferry sites test/show``, presets are validated, and what they say is applied (one upload
lane on an S3-backed gateway, no exec where there is none)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import asyncssh

from backend import ssh
from backend.demo.server import start_sftp_server
from backend.hostkeys import key_line
from backend.sites.model import Site
from backend.sites.profile import (
    PROBE_PREFIX,
    keepalive_for,
    load_profile,
    profile_path,
    profile_policy,
    redetect,
)
from backend.sites.store import SiteStore
from backend.transfers.pool import EXEC_SESSIONS, SitePool
from backend.transfers.streamhash import STREAMS_PER_CONNECTION
from backend.transfers.verify import EXEC_AT_ONCE, RemoteHasher
from tests.matrix import MatrixServer, S3GatewaySFTPServer
from tests.servers import write_private_key
from tests.transfer_helpers import connector_for, sha256_of, write_random

MiB = 1024 * 1024

# kind -> the facts detection must find there (field: value)
EXPECTED: dict[str, dict[str, object]] = {
    "openssh": {"exec_usable": True, "writable": True, "rename": True, "posix_rename": True,
                "append": True, "random_write": True, "fsync": True, "setstat": True,
                "limits": True, "name_encoding": "utf-8"},
    "norename": {"exec_usable": True, "writable": True, "rename": False,
                 "posix_rename": False, "append": True},
    "noposix": {"exec_usable": True, "rename": True, "posix_rename": False, "fsync": False,
                "hardlink": False, "limits": False},
    "readonly": {"exec_usable": True, "writable": False},
    "chroot": {"exec_usable": False, "writable": True, "posix_rename": True},
    "proftpd": {"exec_usable": False, "writable": True, "rename": True},
    "s3gateway": {"exec_usable": False, "writable": True, "append": False,
                  "posix_rename": False, "setstat": False, "random_write": False,
                  "rename": True},
}


def _ferry_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from tui.cli import main; main()", *args]


async def ferry(*args: str) -> tuple[int, str, str]:
    """The real ``ferry`` in a subprocess, without blocking the loop (in-process servers)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = await asyncio.create_subprocess_exec(
        *_ferry_cmd(*args), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_detection_finds_each_kinds_facts_and_leaves_nothing(matrix_server, ferry_home):
    s = matrix_server
    (s.root / "keep.txt").write_bytes(b"the provider's file")
    before = sorted(p.name for p in s.root.iterdir())
    site = s.site()
    conn = await ssh.connect(site)
    try:
        found = await redetect(conn, site)
    finally:
        conn.close()
    for name, want in EXPECTED[s.kind].items():
        assert getattr(found, name) == want, (s.kind, name, found.notes.get(name))
    assert found.check_file is None  # never claimed: asyncssh shows no extension list
    assert found.sftp_version == 3
    if s.kind == "chroot":
        assert "sftp connections only" in found.notes["exec_usable"]
    if s.kind == "readonly":
        assert found.rename is None and found.append is None  # not tried, not guessed
    # nothing left behind, nothing else touched
    assert sorted(p.name for p in s.root.iterdir()) == before
    assert not [p for p in s.root.rglob("*") if p.name.startswith(PROBE_PREFIX)]
    assert (s.root / "keep.txt").read_bytes() == b"the provider's file"
    assert found.leftovers == []
    # remembered, with when and where
    again = load_profile(site)
    assert again is not None and again.to_json() == found.to_json()
    assert again.detected_at and again.address == site.address
    # a profile of another address is not applied
    assert load_profile(s.site(port=1)) is None


async def test_pool_seeded_from_profile_tries_no_exec_on_chroot(server_of_kind, ferry_home):
    async with server_of_kind("chroot") as s:
        site = s.site("sftponly")
        conn = await ssh.connect(site)
        try:
            await redetect(conn, site)
        finally:
            conn.close()
        pool = SitePool("sftponly", connector_for(lambda: site))
        try:
            await pool.ensure_site()
            # known before any verification ran: no exec will even be tried
            assert pool.exec_ok is False
            assert RemoteHasher(pool).usable() is False
        finally:
            await pool.close()


def test_presets_mean_what_the_docs_say(ferry_home):
    base = Site(name="x", host="h")
    aws = profile_policy(Site(name="x", host="h", server_profile="aws-transfer-s3"), None)
    assert (aws.exec_ok, aws.multi_lane_uploads, aws.restart_from_zero, aws.max_sessions) == \
        (False, False, True, 10)
    for name in ("proftpd", "sftp-only"):
        assert profile_policy(Site(name="x", host="h", server_profile=name), None).exec_ok \
            is False
    ssh_open = profile_policy(Site(name="x", host="h", server_profile="openssh"), None)
    assert (ssh_open.exec_ok, ssh_open.multi_lane_uploads, ssh_open.restart_from_zero) == \
        (True, True, False)
    auto = profile_policy(base, None)
    assert (auto.exec_ok, auto.multi_lane_uploads, auto.restart_from_zero) == (None, True, False)
    # keepalive well under AWS's 5-minute idle timeout, and never off there
    assert keepalive_for(Site(name="x", host="h", keepalive=600,
                              server_profile="aws-transfer-s3")) == 60
    assert keepalive_for(Site(name="x", host="h", keepalive=0,
                              server_profile="aws-transfer-s3")) == 60
    assert keepalive_for(Site(name="x", host="h", keepalive=600)) == 600
    # the pool's session budget matches the verification code's use of sessions
    assert EXEC_SESSIONS == EXEC_AT_ONCE + STREAMS_PER_CONNECTION


class _Counting(S3GatewaySFTPServer):
    """The matrix's S3 gateway, noting every open for writing (``opens``: path, accepted)."""

    opens: ClassVar[list[tuple[bytes, bool]]] = []
    reopen_ok = False  # True: an existing file may be opened again (writes still in order)

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND))
        try:
            if self.reopen_ok and writing and not pflags & asyncssh.FXF_APPEND:
                handle = asyncssh.SFTPServer.open(self, path, pflags, attrs)
                self._ends[id(handle)] = 0  # a new handle's writes start at 0, in order
            else:
                handle = super().open(path, pflags, attrs)
        except asyncssh.SFTPError:
            if writing:
                self.opens.append((path, False))
            raise
        if writing:
            self.opens.append((path, True))
        return handle


class _InOrderReopening(_Counting):
    reopen_ok = True


@contextlib.asynccontextmanager
async def _gateway(factory: type[_Counting], tmp_path: Path, client_key: asyncssh.SSHKey,
                   host_key: asyncssh.SSHKey) -> AsyncIterator[MatrixServer]:
    factory.opens = []
    files = tmp_path / "bucket"
    key_path = write_private_key(client_key, tmp_path / "id_gw")
    running = await start_sftp_server(files, host_key=host_key, authorized_keys=[client_key],
                                      allow_exec=False, sftp_factory=factory)
    try:
        yield MatrixServer(kind="s3gateway", host=running.host, port=running.port,
                           user="tester", host_key_line=key_line(host_key),
                           client_key_path=key_path, root=files, remote_dir="/")
    finally:
        running.close()
        await running.wait_closed()


async def _add_aws_site(s: MatrixServer, name: str) -> None:
    code, _out, err = await ferry(
        "sites", "add", name, "--host", s.host, "--port", str(s.port), "--user", s.user,
        "--key", str(s.client_key_path), "--remote-dir", s.remote_dir,
        "--server-profile", "aws-transfer-s3")
    assert code == 0, err
    SiteStore().replace_host_keys(name, [s.host_key_line])


async def test_aws_preset_puts_a_big_file_on_one_lane(ferry_home, tmp_path, client_key,
                                                      host_key):
    """The gateway sees one write handle for the upload; today's code opens three more
    lanes' handles on the temp file, which the gateway refuses (and Ferry ignores)."""
    async with _gateway(_Counting, tmp_path, client_key, host_key) as s:
        src = tmp_path / "study.zip"
        want = write_random(src, 9 * MiB + 123, seed=7)
        await _add_aws_site(s, "s3")
        code, _out, err = await ferry("put", str(src), "s3:/study.zip")
        assert code == 0, err
        assert sha256_of(s.root / "study.zip") == want
        assert sorted(p.name for p in s.root.iterdir()) == ["study.zip"]
        assert _Counting.opens == [(b"/study.zip.ferrypart", True)]


async def test_aws_preset_puts_a_big_file_where_reopened_handles_break_uploads(
        ferry_home, tmp_path, client_key, host_key):
    """A gateway that lets a file be opened again but takes writes only in order: today's
    multi-lane upload writes at other offsets on the extra handles and fails."""
    async with _gateway(_InOrderReopening, tmp_path, client_key, host_key) as s:
        src = tmp_path / "study.zip"
        want = write_random(src, 12 * MiB + 5, seed=9)
        await _add_aws_site(s, "gw")
        code, _out, err = await ferry("put", str(src), "gw:/study.zip")
        assert code == 0, err
        assert sha256_of(s.root / "study.zip") == want
        assert [ok for _p, ok in _InOrderReopening.opens] == [True]


async def test_auto_profile_after_sites_test_also_uploads_on_one_lane(
        server_of_kind, ferry_home, tmp_path):
    async with server_of_kind("s3gateway") as s:
        src = tmp_path / "big.bin"
        want = write_random(src, 8 * MiB + 1, seed=8)
        SiteStore().add(s.site("gw"))
        code, out, err = await ferry("sites", "test", "gw")
        assert code == 0, err
        assert "out-of-order writes: no" in out and "append/reopen at offset: no" in out
        assert "uploads on one lane, in order" in out
        code, out, err = await ferry("put", str(src), "gw:/big.bin")
        assert code == 0, err
        assert sha256_of(s.root / "big.bin") == want


async def test_sites_test_then_show_prints_and_json_includes_the_profile(
        server_of_kind, ferry_home):
    async with server_of_kind("chroot") as s:
        SiteStore().add(s.site("box"))
        code, out, err = await ferry("sites", "show", "box", "--no-connect")
        assert code == 0, err
        assert "detected: never (run 'ferry sites test box')" in out
        code, out, err = await ferry("sites", "test", "box")
        assert code == 0, err
        assert "exec: no" in out and "sftp connections only" in out
        assert profile_path("box").is_file()
        code, out, err = await ferry("sites", "show", "box", "--no-connect")
        assert code == 0, err
        lines = out.splitlines()
        assert "exec: no" in out and "posix-rename: yes" in lines and "writes: yes" in lines
        assert any(line.startswith("detected: ") and "UTC" in line for line in lines)
        code, out, err = await ferry("sites", "show", "box", "--detect", "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["server_profile"] == "auto"
        assert shown["profile"]["detected"]["exec_usable"] is False
        assert shown["profile"]["detected"]["posix_rename"] is True
        assert shown["profile"]["policy"]["exec_ok"] is False
        assert "cipher (client->server)" in shown["negotiated"]
        code, _out, err = await ferry("sites", "show", "box", "--detect", "--no-connect")
        assert code == 2 and "--detect" in err and len(err.strip().splitlines()) == 1
        # renaming the site keeps its profile; removing it forgets it
        code, _out, err = await ferry("sites", "edit", "box", "--name", "box2")
        assert code == 0, err
        assert profile_path("box2").is_file() and not profile_path("box").exists()
        code, _out, err = await ferry("sites", "remove", "box2")
        assert code == 0, err
        assert not profile_path("box2").exists()


async def test_bad_server_profile_is_one_line_with_a_documented_code(ferry_home):
    code, _out, err = await ferry("sites", "add", "x", "--host", "h.example.org",
                                 "--server-profile", "s3")
    assert code == 2
    assert err.strip().count("\n") == 0 and "--server-profile" in err
    assert "aws-transfer-s3" in err and "Traceback" not in err
    assert not (ferry_home / "sites.toml").exists()
    # a hand-edited sites.toml with a bad value: exit 3 naming the file and line
    code, _out, err = await ferry("sites", "add", "x", "--host", "h.example.org")
    assert code == 0, err
    toml = ferry_home / "sites.toml"
    text = toml.read_text()
    toml.write_text(text.replace('server_profile = "auto"', 'server_profile = "bogus"'))
    code, _out, err = await ferry("sites", "list")
    assert code == 3 and "server_profile" in err and "sites.toml:" in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    # ... or given twice (tomlkit refuses the file): still one line, exit 3
    toml.write_text(text + 'server_profile = "proftpd"\n')
    code, _out, err = await ferry("sites", "list")
    assert code == 3 and "server_profile" in err and "sites.toml" in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_server_profile_round_trips_through_sites_toml(ferry_home: Path):
    store = SiteStore()
    store.add(Site(name="a", host="h", server_profile="proftpd"))
    assert store.get("a").server_profile == "proftpd"
    store.update("a", server_profile="auto")
    assert store.get("a").server_profile == "auto"
