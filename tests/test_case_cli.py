"""``ferry case ...`` as scripts use it: the real console script against OpenSSH sshd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.demo.samples import populate
from backend.sites.store import SiteStore
from tests.case_helpers import snapshot

FERRY = Path(sys.executable).parent / "ferry"


def ferry(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "1"}
    return subprocess.run([str(FERRY), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def served(sshd, tmp_path: Path, ferry_home: Path) -> Path:
    base = tmp_path / "served"
    populate(base, large_file_mib=1)
    store = SiteStore()
    store.add(sshd.site("idt", layout="inbox-outbox", remote_dir=str(base / "idt")))
    store.add(sshd.site("ai", layout="study-io", remote_dir=str(base / "ai")))
    store.add(sshd.site("plain", remote_dir=str(base)))
    return base


def test_send_prints_the_study_id_and_watch_once_downloads_after_two_polls(
    served: Path, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    (study / "series").mkdir(parents=True)
    (study / "series" / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(2000))
    sent = ferry("case", "send", "ai", str(study), "--allow-non-dicom")
    assert sent.returncode == 0, sent.stderr
    study_id = sent.stdout.strip()
    assert (served / "ai" / "input" / study_id / "input" / f"{study_id}.zip").is_file()

    into = tmp_path / "results"
    first = ferry("case", "watch", "ai", "--once", "--into", str(into))
    assert first.returncode == 0, first.stderr
    assert not into.exists() or not any(into.iterdir()), "nothing is stable after one poll"
    second = ferry("case", "watch", "ai", "--once", "--into", str(into))
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("results downloaded") == 2
    for out in (served / "ai" / "output").iterdir():
        assert snapshot(into / out.name[:-4]) == snapshot(out)
    third = ferry("case", "watch", "ai", "--once", "--into", str(into))
    assert "results downloaded" not in third.stdout, "downloaded once, never twice"

    listing = ferry("case", "list", "ai", "--json")
    assert listing.returncode == 0, listing.stderr
    states = {c["case_id"]: c["state"] for c in json.loads(listing.stdout)["cases"]}
    assert states[study_id] == "processing"
    assert sorted(states.values()).count("downloaded") == 2


def test_archive_dry_run_prints_exactly_what_the_real_run_moves(served: Path) -> None:
    inbox = served / "idt" / "From_IDT"
    old = time.time() - 60 * 86400
    for case in ("CASE-20261118-0031", "CASE-20261120-0033"):
        os.utime(inbox / case, (old, old))
    before = snapshot(served / "idt")
    preview = ferry("case", "archive", "idt", "--older-than", "30d", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert snapshot(served / "idt") == before
    real = ferry("case", "archive", "idt", "--older-than", "30d")
    assert real.returncode == 0, real.stderr
    assert real.stdout == preview.stdout
    assert len(real.stdout.splitlines()) == 2
    year = time.localtime(old).tm_year
    assert (served / "idt" / "Old_Cases" / str(year) / "CASE-20261118-0031").is_dir()
    assert len(snapshot(served / "idt")) == len(before), "nothing deleted"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["case", "list", "nosuchsite"], 3, "nosuchsite"),
        (["case", "list", "plain"], 2, "no case layout"),
        (["case", "archive", "idt"], 2, "--older-than"),
        (["case", "archive", "ai", "--older-than", "1d"], 2, "inbox-outbox"),
        (["case", "archive", "idt", "--older-than", "soon"], 2, "invalid duration"),
        (["case", "archive", "idt", "NOT-A-CASE"], 3, "no case"),
        (["case", "send", "ai", "/nonexistent/study"], 2, "no such file"),
        (["case", "send", "ai", "/etc/hostname", "--study-id", "x"], 2, ".zip"),
        (["case", "send", "ai", "/etc", "--study-id", "../evil"], 2, "invalid study id"),
        (["case", "watch", "ai", "--interval", "0"], 2, "--interval"),
    ],
)
def test_bad_input_is_one_line_and_a_documented_exit_code(
    served: Path, args: list[str], code: int, words: str
) -> None:
    result = ferry(*args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferry: error:"), result.stderr
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_watch_runs_until_sigterm_and_downloads_in_the_background(
    served: Path, tmp_path: Path
) -> None:
    into = tmp_path / "got"
    proc = subprocess.Popen(
        [str(FERRY), "case", "watch", "ai", "--interval", "1", "--into", str(into)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": "1"},
    )
    try:
        wanted = {p.name[:-4] for p in (served / "ai" / "output").iterdir()}
        for _ in range(300):  # bounded wait: two polls one second apart, then the downloads
            if into.is_dir() and {p.name for p in into.iterdir()} == wanted and all(
                (into / w / "aidp.csv").exists() for w in wanted
            ):
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("results downloaded") == 2
    assert "watching ai" in err and "Traceback" not in err
