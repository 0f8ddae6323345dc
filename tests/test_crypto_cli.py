"""``ferry encrypt`` / ``ferry decrypt`` through the real console script: round trips, and
wrong secrets or tampering end with exit 12 and no output file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backend.crypto.container import Encryptor, read_info
from backend.crypto.header import build_header
from backend.crypto.keys import generate_key_file
from backend.crypto.segments import new_stream_header

# the console script of the venv running the tests (the `make test` one: .venv/bin/ferry)
FERRY = Path(sys.executable).parent / "ferry"


def ferry(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FERRY_HOME", "SSH_AUTH_SOCK")}
    env["FERRY_HOME"] = str(tmp_path / "home")
    env["FERRY_NONINTERACTIVE"] = "1"
    return subprocess.run(
        [str(FERRY), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        input=stdin if stdin is not None else "", timeout=60,
    )


def listing(folder: Path) -> list[str]:
    """The user's files in ``folder`` (FERRY_HOME excluded)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "home")


def one_line_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferry: error:"), proc.stderr
    assert text in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(1_500_000)  # two segments
    path = tmp_path / "study-42.zip"
    path.write_bytes(data)
    (tmp_path / "pass.txt").write_text("tr0ub4dor & 3\n")
    return path, data


def test_passphrase_round_trip_with_default_names(tmp_path: Path, case) -> None:
    src, data = case
    proc = ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    assert proc.returncode == 0, proc.stderr
    sealed = tmp_path / "study-42.zip.ferry"
    assert proc.stdout.strip() == str(Path("study-42.zip.ferry"))
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert data[:4096] not in sealed.read_bytes()
    assert read_info(sealed).name == "study-42.zip"
    src.unlink()
    proc = ferry(tmp_path, "decrypt", "study-42.zip.ferry", "--passphrase-file", "pass.txt")
    assert proc.returncode == 0, proc.stderr
    assert src.read_bytes() == data


def test_passphrase_from_stdin_and_key_file_round_trips(tmp_path: Path, case) -> None:
    src, data = case
    proc = ferry(tmp_path, "encrypt", src.name, "-o", "x.bin", "--passphrase-file", "-",
                 stdin="from stdin\n")
    assert proc.returncode == 0, proc.stderr
    proc = ferry(tmp_path, "decrypt", "x.bin", "-o", "y.zip", "--passphrase-file", "-",
                 stdin="from stdin\n")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "y.zip").read_bytes() == data

    generate_key_file(tmp_path / "site.key")
    assert ferry(tmp_path, "encrypt", src.name, "--key-file", "site.key").returncode == 0
    proc = ferry(tmp_path, "decrypt", "study-42.zip.ferry", "-o", "z.zip",
                 "--key-file", "site.key")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "z.zip").read_bytes() == data


def test_stored_name_names_the_output_when_the_file_was_renamed(tmp_path: Path, case) -> None:
    src, data = case
    ferry(tmp_path, "encrypt", src.name, "-o", "parcel.bin", "--passphrase-file", "pass.txt")
    src.unlink()
    proc = ferry(tmp_path, "decrypt", "parcel.bin", "--passphrase-file", "pass.txt")
    assert proc.returncode == 0, proc.stderr
    assert src.read_bytes() == data


def test_wrong_passphrase_exits_12_and_writes_nothing(tmp_path: Path, case) -> None:
    src, _ = case
    ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    src.unlink()
    (tmp_path / "wrong.txt").write_text("not it\n")
    before = listing(tmp_path)
    proc = ferry(tmp_path, "decrypt", "study-42.zip.ferry", "--passphrase-file", "wrong.txt")
    one_line_error(proc, 12, "wrong passphrase")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("where", [200, -10])
def test_tampered_file_exits_12_and_writes_nothing(tmp_path: Path, case, where: int) -> None:
    src, _ = case
    ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    src.unlink()
    sealed = tmp_path / "study-42.zip.ferry"
    blob = bytearray(sealed.read_bytes())
    blob[where] ^= 0x04
    sealed.write_bytes(blob)
    before = listing(tmp_path)
    proc = ferry(tmp_path, "decrypt", sealed.name, "--passphrase-file", "pass.txt")
    one_line_error(proc, 12, "failed verification")
    assert listing(tmp_path) == before


def test_truncated_file_exits_12_and_writes_nothing(tmp_path: Path, case) -> None:
    src, _ = case
    ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    src.unlink()
    sealed = tmp_path / "study-42.zip.ferry"
    sealed.write_bytes(sealed.read_bytes()[:-100])
    proc = ferry(tmp_path, "decrypt", sealed.name, "--passphrase-file", "pass.txt")
    one_line_error(proc, 12, "truncated")
    assert not src.exists()


def test_no_secret_source_without_a_terminal_is_a_usage_error(tmp_path: Path, case) -> None:
    src, _ = case
    one_line_error(ferry(tmp_path, "encrypt", src.name), 2, "cannot prompt")
    assert not (tmp_path / "study-42.zip.ferry").exists()
    ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    one_line_error(ferry(tmp_path, "decrypt", "study-42.zip.ferry", "-o", "o"), 2,
                   "cannot prompt")


def test_existing_output_is_kept_unless_force(tmp_path: Path, case) -> None:
    src, data = case
    out = tmp_path / "study-42.zip.ferry"
    out.write_bytes(b"precious")
    proc = ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt")
    one_line_error(proc, 2, "already exists")
    assert out.read_bytes() == b"precious"
    proc = ferry(tmp_path, "encrypt", src.name, "--passphrase-file", "pass.txt", "--force")
    assert proc.returncode == 0, proc.stderr
    one_line_error(ferry(tmp_path, "decrypt", out.name, "--passphrase-file", "pass.txt"), 2,
                   "already exists")
    assert src.read_bytes() == data


def test_key_file_container_without_key_file_says_so(tmp_path: Path, case) -> None:
    src, _ = case
    generate_key_file(tmp_path / "k")
    ferry(tmp_path, "encrypt", src.name, "-o", "s.ferry", "--key-file", "k")
    one_line_error(ferry(tmp_path, "decrypt", "s.ferry", "-o", "o"), 2, "--key-file")
    one_line_error(ferry(tmp_path, "decrypt", "s.ferry", "-o", "o", "--passphrase-file",
                         "pass.txt"), 12, "encrypted with a key file")
    assert not (tmp_path / "o").exists()


def test_wrong_size_key_file_is_refused(tmp_path: Path, case) -> None:
    src, _ = case
    (tmp_path / "short.key").write_bytes(b"x" * 16)
    one_line_error(ferry(tmp_path, "encrypt", src.name, "--key-file", "short.key"), 12,
                   "expected exactly 32")
    assert not (tmp_path / "study-42.zip.ferry").exists()


def test_hostile_stored_name_is_refused(tmp_path: Path) -> None:
    """A sender who knows the key can still write any name into the header: '..' must not
    become the output path."""
    generate_key_file(tmp_path / "k")
    key = (tmp_path / "k").read_bytes()
    raw, ikm = build_header(key=key, passphrase=None, name="ab", size=None)
    hostile = raw.replace(b"\x02ab", b"\x02..")
    enc = Encryptor(hostile, ikm, new_stream_header(), size=None)
    (tmp_path / "parcel").write_bytes(enc.header() + enc.update(b"boom") + enc.finalize())
    before = listing(tmp_path)
    proc = ferry(tmp_path, "decrypt", "parcel", "--key-file", "k")
    one_line_error(proc, 14, "unsafe")
    assert listing(tmp_path) == before
