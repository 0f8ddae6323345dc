"""Packing a study: the zip round-trips, is deterministic, ZIP64-capable, follows no links."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest

from backend.cases import packer
from backend.checksum import local_sha256_sync
from backend.errors import UsageError


def make_study(root: Path) -> dict[str, bytes]:
    files = {
        "series_001/IM0001.dcm": b"\0" * 128 + b"DICM" + os.urandom(3000),
        "series_001/IM0002.dcm": b"\0" * 128 + b"DICM" + os.urandom(5000),
        "series_002/IM0001.dcm": b"\0" * 128 + b"DICM" + bytes(range(256)) * 40,
        "notes.txt": b"referral notes\n",
        "empty.bin": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def local_header_has_zip64(zip_path: Path, info: zipfile.ZipInfo) -> bool:
    with open(zip_path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        fh.seek(info.header_offset + 30 + name_len)
        extra = fh.read(extra_len)
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[pos:pos + 4])
        if tag == 0x0001:
            return True
        pos += 4 + size
    return False


def test_packed_zip_round_trips_same_names_and_bytes(tmp_path: Path) -> None:
    files = make_study(tmp_path / "study")
    result = packer.pack_folder(tmp_path / "study", tmp_path / "out.zip")
    assert result.files == sorted(files)
    with zipfile.ZipFile(result.path) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == sorted(files)
        for name, data in files.items():
            assert zf.read(name) == data
    assert result.sha256 == local_sha256_sync(str(result.path))
    assert result.size == result.path.stat().st_size
    assert not list(tmp_path.glob(".out.zip*")), "no temporary file is left behind"


def test_packing_is_deterministic_in_order_and_content(tmp_path: Path) -> None:
    make_study(tmp_path / "study")
    a = packer.pack_folder(tmp_path / "study", tmp_path / "a.zip")
    b = packer.pack_folder(tmp_path / "study", tmp_path / "b.zip")
    assert a.sha256 == b.sha256
    with zipfile.ZipFile(a.path) as zf:
        assert zf.namelist() == sorted(zf.namelist())


def test_zip64_records_are_written_past_the_threshold_and_still_read_back(tmp_path: Path) -> None:
    files = make_study(tmp_path / "study")
    result = packer.pack_folder(tmp_path / "study", tmp_path / "z.zip", zip64_threshold=4000)
    with zipfile.ZipFile(result.path) as zf:
        assert zf.testzip() is None
        infos = {i.filename: i for i in zf.infolist()}
        for name, data in files.items():
            assert zf.read(name) == data
            assert local_header_has_zip64(result.path, infos[name]) == (len(data) > 4000), name


def test_symlinks_are_never_followed_or_packed(tmp_path: Path) -> None:
    study = tmp_path / "study"
    make_study(study)
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwd").write_text("secret")
    os.symlink(secret / "passwd", study / "link.txt")
    os.symlink(secret, study / "linked-folder")
    result = packer.pack_folder(study, tmp_path / "s.zip")
    assert sorted(result.skipped) == ["link.txt", "linked-folder"]
    with zipfile.ZipFile(result.path) as zf:
        assert not any("link" in n or "passwd" in n for n in zf.namelist())


def test_an_existing_destination_is_never_overwritten(tmp_path: Path) -> None:
    make_study(tmp_path / "study")
    (tmp_path / "taken.zip").write_bytes(b"keep me")
    with pytest.raises(UsageError, match="already exists"):
        packer.pack_folder(tmp_path / "study", tmp_path / "taken.zip")
    assert (tmp_path / "taken.zip").read_bytes() == b"keep me"


def test_a_broken_zip_is_refused_before_sending(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UsageError, match="not a readable zip"):
        packer.check_zip(bad)
    with pytest.raises(UsageError, match="no files"):
        (tmp_path / "empty").mkdir()
        packer.pack_folder(tmp_path / "empty", tmp_path / "e.zip")
