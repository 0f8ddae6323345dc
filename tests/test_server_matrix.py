"""The provider-server matrix itself (tests/matrix.py): every kind starts, serves its folder,
and has the quirks Ferry must cope with. A kind that cannot start fails here first."""

from __future__ import annotations

import asyncssh
import pytest

from tests.matrix import APPEND_REFUSED


async def _connect(s):
    return await asyncssh.connect(s.host, s.port, username=s.user, known_hosts=None,
                                  client_keys=[str(s.client_key_path)])


EXEC_WORKS = {"openssh", "norename", "noposix", "readonly"}


async def test_each_kind_serves_its_folder_with_its_quirks(matrix_server):
    s = matrix_server
    (s.root / "seed.txt").write_bytes(b"seed")
    async with await _connect(s) as conn:
        async with conn.start_sftp_client() as sftp:
            assert "seed.txt" in await sftp.listdir(s.remote_dir)
            assert await (await sftp.open(s.remote("seed.txt"), "rb")).read() == b"seed"
            if s.kind == "readonly":
                with pytest.raises(asyncssh.SFTPError):
                    await sftp.open(s.remote("new.txt"), "wb")
            else:
                async with sftp.open(s.remote("new.txt"), "wb") as fh:
                    await fh.write(b"new")
                assert (s.root / "new.txt").read_bytes() == b"new"
            if s.kind in ("norename", "s3gateway", "noposix"):
                with pytest.raises(asyncssh.SFTPError):
                    await sftp.posix_rename(s.remote("new.txt"), s.remote("seed.txt"))
                assert (s.root / "seed.txt").read_bytes() == b"seed"
            if s.kind == "norename":
                with pytest.raises(asyncssh.SFTPError):
                    await sftp.rename(s.remote("new.txt"), s.remote("other.txt"))
            if s.kind == "s3gateway":
                with pytest.raises(asyncssh.SFTPOpUnsupported, match=APPEND_REFUSED):
                    await sftp.open(s.remote("new.txt"), "ab")
        if s.kind in EXEC_WORKS:
            result = await conn.run("echo hi", check=False)
            assert result.exit_status == 0 and result.stdout == "hi\n"
        elif s.kind == "chroot":
            result = await conn.run("echo hi", check=False)
            assert result.exit_status == 1
            assert "sftp connections only" in str(result.stdout) + str(result.stderr)
        else:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.run("echo hi", check=False)
