"""Remote listings and the walker treat every server-supplied name as hostile input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend import remote, ssh
from backend.demo.server import start_sftp_server
from tests.hostile import HOSTILE_NAMES, HostileSFTPServer
from tests.servers import write_private_key

pytestmark = pytest.mark.usefixtures("ferry_home")


@pytest.fixture
async def hostile_server(tmp_path, host_key, client_key):
    from tests.servers import InProcessServer

    key_path = write_private_key(client_key, tmp_path / "id_hostile")
    server = await start_sftp_server(
        tmp_path / "hostile-root",
        host_key=host_key,
        authorized_keys=[client_key],
        sftp_factory=HostileSFTPServer,
    )
    try:
        yield InProcessServer(server=server, client_key_path=key_path)
    finally:
        server.close()


async def test_listing_drops_and_reports_every_hostile_name(hostile_server) -> None:
    (hostile_server.root / "fine.txt").write_text("ok")
    async with ssh.sftp_session(hostile_server.site()) as (_c, sftp):
        listing = await remote.list_dir(sftp, "/")
    assert [e.name for e in listing.entries] == ["fine.txt"]
    assert len(listing.rejected) == len(HOSTILE_NAMES) - 1  # ".." is silently skipped
    for reason in listing.rejected:
        assert "\x1b" not in reason and "\x00" not in reason and "\x07" not in reason


async def test_walker_never_yields_a_path_outside_the_top(hostile_server) -> None:
    sub = hostile_server.root / "case" / "series"
    sub.mkdir(parents=True)
    (sub / "IM0001.dcm").write_bytes(b"DICM")
    rejected: list[str] = []
    async with ssh.sftp_session(hostile_server.site()) as (_c, sftp):
        items = [i async for i in remote.walk(sftp, "/case", rejected=rejected)]
    assert [i.relpath for i in items] == ["series", "series/IM0001.dcm"]
    assert rejected, "hostile names in every folder are reported"
    assert all(".." not in i.parts and all("/" not in p for p in i.parts) for i in items)


async def test_walker_reports_symlinks_without_following_them(sftp_server, tmp_path) -> None:
    outside = tmp_path / "outside-secret"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not follow")
    top = sftp_server.root / "study"
    top.mkdir()
    os.symlink(outside, top / "link-to-outside")
    async with ssh.sftp_session(sftp_server.site()) as (_c, sftp):
        items = [i async for i in remote.walk(sftp, "/study")]
    assert [(i.relpath, i.entry.kind) for i in items] == [("link-to-outside", "link")]


async def test_listing_shows_type_size_mtime_and_mode(sshd, tmp_path: Path) -> None:
    folder = tmp_path / "listing"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"x" * 1234)
    os.chmod(folder / "a.dcm", 0o640)
    os.utime(folder / "a.dcm", (1_700_000_000, 1_700_000_000))
    (folder / "sub").mkdir()
    async with ssh.sftp_session(sshd.site()) as (_c, sftp):
        listing = await remote.list_dir(sftp, str(folder))
    by_name = {e.name: e for e in listing.entries}
    assert [e.name for e in listing.entries] == ["sub", "a.dcm"]  # folders first
    assert by_name["a.dcm"].size == 1234 and by_name["a.dcm"].mode == 0o640
    assert by_name["a.dcm"].mtime == 1_700_000_000 and by_name["sub"].kind == "dir"


async def test_missing_folder_is_a_not_found_error(sftp_server) -> None:
    from backend.errors import RemoteNotFoundError

    async with ssh.sftp_session(sftp_server.site()) as (_c, sftp):
        with pytest.raises(RemoteNotFoundError, match="no such file"):
            await remote.list_dir(sftp, "/does/not/exist")


async def test_delete_removes_a_tree_but_only_the_link_not_its_target(sftp_server, tmp_path):
    outside = tmp_path / "keep-me"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    top = sftp_server.root / "old"
    (top / "deep").mkdir(parents=True)
    (top / "deep" / "f.txt").write_text("x")
    os.symlink(outside, top / "link")
    async with ssh.sftp_session(sftp_server.site()) as (_c, sftp):
        plan = await remote.plan_delete(sftp, "/old")
        removed = await remote.delete(sftp, "/old")
    assert sorted(i.relpath for i in plan) == ["old", "old/deep", "old/deep/f.txt", "old/link"]
    assert removed == 4
    assert not top.exists() and (outside / "precious.txt").read_text() == "keep"


def test_parse_remote_spec() -> None:
    assert remote.parse_remote_spec("demo:/From_IDT") == ("demo", "/From_IDT")
    assert remote.parse_remote_spec("demo:") == ("demo", "")
    assert remote.parse_remote_spec("./local:file") is None
    assert remote.parse_remote_spec("/abs/path") is None
