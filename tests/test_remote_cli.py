"""``ferry mkdir``, ``rm``, ``rename`` and ``mv`` (issue 14, "CLI parity"): what the user sees
on the server and on the terminal, and every refusal (exit code, one line, nothing changed)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from backend.sites.store import SiteStore
from backend.transfers import Journal
from tests.transfer_helpers import sha256_of, write_random

ROOT = Path(__file__).resolve().parent.parent


async def ferry(*args: str, stdin: bytes | None = None, tty_env: bool = False
                ) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tui.cli import main; main()", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("ferry: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


async def test_mkdir_creates_a_folder_refuses_an_existing_one_and_p_makes_parents(
        ferry_home, sftp_server):
    SiteStore().add(sftp_server.site("lab"))
    code, out, err = await ferry("mkdir", "lab:/inbox")
    assert code == 0, err
    assert (sftp_server.root / "inbox").is_dir() and "created lab:/inbox/" in out
    code, _, err = await ferry("mkdir", "lab:/inbox")
    assert code == 3 and "already exists" in one_line_error(err)
    code, _, err = await ferry("mkdir", "lab:/a/b/c")
    assert code == 9 and "-p" in one_line_error(err)
    assert not (sftp_server.root / "a").exists()
    code, out, err = await ferry("mkdir", "-p", "lab:/a/b/c", "--json")
    assert code == 0, err
    assert (sftp_server.root / "a" / "b" / "c").is_dir()
    assert json.loads(out)["created"] == ["/a", "/a/b", "/a/b/c"]
    code, _, _ = await ferry("mkdir", "-p", "lab:/a/b/c")  # like mkdir -p: already there is fine
    assert code == 0
    (sftp_server.root / "file.txt").write_text("x")
    code, _, err = await ferry("mkdir", "-p", "lab:/file.txt/sub")
    assert code == 3 and "not a folder" in one_line_error(err)


async def test_rm_lists_what_goes_refuses_without_yes_and_deletes_with_it(ferry_home,
                                                                         sftp_server):
    SiteStore().add(sftp_server.site("lab"))
    case = sftp_server.root / "out" / "CASE-1"
    write_random(case / "scan.dcm", 5000, seed=1)
    write_random(case / "series" / "img.dcm", 700, seed=2)
    code, _, err = await ferry("rm", "lab:/out/CASE-1")
    assert code == 2 and "is a folder" in one_line_error(err) and "-r" in err
    code, _, err = await ferry("rm", "-r", "lab:/out/CASE-1")  # no terminal, no --yes
    assert code == 2
    assert "--yes" in one_line_error(err) and "nothing deleted" in err
    assert "CASE-1/series/img.dcm" in err and "2 file(s) and 2 folder(s)" in err  # the listing
    assert (case / "scan.dcm").exists()
    code, out, err = await ferry("rm", "-r", "--yes", "lab:/out/CASE-1", "--json")
    assert code == 0, err
    assert not case.exists() and (sftp_server.root / "out").is_dir()
    assert json.loads(out)["count"] == 4
    code, _, err = await ferry("rm", "--yes", "lab:/out/nope.txt")
    assert code == 9 and "nope.txt" in one_line_error(err)
    code, _, err = await ferry("rm", "-r", "--yes", "lab:/")
    assert code == 2 and "top folder" in one_line_error(err)
    assert (sftp_server.root / "out").is_dir()


async def test_rename_within_its_folder_and_never_onto_an_existing_name(ferry_home,
                                                                       sftp_server):
    SiteStore().add(sftp_server.site("lab"))
    want = write_random(sftp_server.root / "in" / "report.pdf", 3000, seed=3)
    other = write_random(sftp_server.root / "in" / "final.pdf", 100, seed=4)
    code, _, err = await ferry("rename", "lab:/in/report.pdf", "final.pdf")
    assert code == 3 and "already exists" in one_line_error(err)
    assert sha256_of(sftp_server.root / "in" / "final.pdf") == other  # nothing replaced
    code, _, err = await ferry("rename", "lab:/in/report.pdf", "../x.pdf")
    assert code == 2 and "ferry mv" in one_line_error(err)
    code, out, err = await ferry("rename", "lab:/in/report.pdf", "report-v2.pdf")
    assert code == 0, err
    assert "renamed lab:/in/report.pdf -> /in/report-v2.pdf" in out
    assert sha256_of(sftp_server.root / "in" / "report-v2.pdf") == want
    assert not (sftp_server.root / "in" / "report.pdf").exists()


async def test_mv_same_site_renames_on_the_server(ferry_home, sftp_server):
    SiteStore().add(sftp_server.site("lab"))
    want = write_random(sftp_server.root / "inbox" / "CASE-1" / "scan.dcm", 4000, seed=5)
    (sftp_server.root / "archive").mkdir()
    code, out, err = await ferry("mv", "lab:/inbox/CASE-1", "lab:/archive")
    assert code == 0, err
    assert "renamed on the server" in out
    assert sha256_of(sftp_server.root / "archive" / "CASE-1" / "scan.dcm") == want
    assert not (sftp_server.root / "inbox" / "CASE-1").exists()
    assert Journal().job_rows() == []  # no copy was needed


async def test_mv_refuses_an_existing_destination_every_way(ferry_home, sftp_server, tmp_path):
    SiteStore().add(sftp_server.site("lab"))
    write_random(sftp_server.root / "in" / "a.bin", 100, seed=6)
    taken = write_random(sftp_server.root / "out" / "a.bin", 50, seed=7)
    local = tmp_path / "local"
    mine = write_random(local / "a.bin", 70, seed=8)
    for src, dst in (("lab:/in/a.bin", "lab:/out"), ("lab:/in/a.bin", str(local)),
                     (str(local / "a.bin"), "lab:/out/")):
        code, _, err = await ferry("mv", src, dst)
        assert code == 3, (src, dst, err)
        assert "already exists; nothing was moved" in one_line_error(err)
    assert sha256_of(sftp_server.root / "out" / "a.bin") == taken
    assert sha256_of(local / "a.bin") == mine
    assert (sftp_server.root / "in" / "a.bin").exists()
    code, _, err = await ferry("mv", str(local / "a.bin"), str(tmp_path / "b.bin"))
    assert code == 2 and "shell's mv" in one_line_error(err)
    code, _, err = await ferry("mv", "lab:/in/missing.bin", str(local) + "/")
    assert code == 9 and "missing.bin" in one_line_error(err)


async def test_mv_to_and_from_this_machine_deletes_each_original_after_verifying(
        ferry_home, sftp_server, tmp_path):
    SiteStore().add(sftp_server.site("lab"))
    local = tmp_path / "study"
    want = write_random(local / "series" / "IM0001.dcm", 200_000, seed=9)
    (sftp_server.root / "in").mkdir()
    code, out, err = await ferry("mv", str(local), "lab:/in/")
    assert code == 0, err
    assert sha256_of(sftp_server.root / "in" / "study" / "series" / "IM0001.dcm") == want
    assert not local.exists()  # file and folders removed after the verified upload
    assert "deleted after a verified copy" in err
    back = tmp_path / "back"
    back.mkdir()
    code, out, err = await ferry("mv", "lab:/in/study", str(back), "--json")
    assert code == 0, err
    assert sha256_of(back / "study" / "series" / "IM0001.dcm") == want
    assert not (sftp_server.root / "in" / "study").exists()
    (moved,) = [json.loads(line) for line in out.splitlines() if '"kind": "move"' in line]
    assert moved["complete"] is True and len(moved["deleted"]) == 1


async def test_mv_on_a_server_without_rename_moves_by_a_verified_copy(
        ferry_home, server_of_kind):
    async with server_of_kind("norename") as server:
        # uploads there cannot be renamed into place either: the site writes final names
        SiteStore().add(server.site("lab", upload_mode="direct"))
        want = write_random(server.root / "report.pdf", 20_000, seed=10)
        code, _out, err = await ferry("mv", "lab:" + server.remote("report.pdf"),
                                     "lab:" + server.remote("renamed.pdf"))
        assert code == 0, err
        assert "refused a rename" in err
        assert not (server.root / "report.pdf").exists()
        assert sha256_of(server.root / "renamed.pdf") == want
    assert [j.state for j in Journal().job_rows()] == ["done", "done"]  # the two relay legs


async def test_mv_with_verify_none_keeps_the_original_and_exits_11(ferry_home, sftp_server,
                                                                  tmp_path):
    SiteStore().add(sftp_server.site("lab"))
    source = tmp_path / "scan.dcm"
    want = write_random(source, 1000, seed=11)
    code, _, err = await ferry("mv", "--verify", "none", str(source), "lab:/scan.dcm")
    assert code == 11
    assert "scan.dcm (copied but not verified)" in err
    assert sha256_of(source) == want and (sftp_server.root / "scan.dcm").exists()
