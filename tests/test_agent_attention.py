"""Questions without a terminal: a job waits in "needs attention" until a later client
answers; the vault starts locked, is unlocked over the socket and relocks when idle
(docs/agent.md)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from backend import paths
from backend.sites.model import secret_name
from backend.sites.store import SiteStore
from backend.vault import Vault
from tests.agent_helpers import (
    ROOT,
    agent_home,  # noqa: F401 (fixture)
    agent_pid,
    argv,
    env,
    ferry,
    jobs,
    wait_for,
)

PASS = "correct horse battery staple"
KEYPASS = "key passphrase 42"


@pytest.fixture
def served(sshd, tmp_path: Path, agent_home: Path) -> Path:  # noqa: F811
    base = tmp_path / "served"
    base.mkdir()
    (base / "small.txt").write_text("hello attention\n")
    SiteStore().add(sshd.site("newhost", pinned=False, remote_dir=str(base)))
    return base


def _attention(job_id: int) -> str | None:
    return next((j["attention"] for j in jobs() if j["id"] == job_id and j["attention"]), None)


def _interactive(*args: str) -> tuple[int, str]:
    """``ferry ARGS`` on a pseudo-terminal, accepting the host key when asked."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv(*args), env=env(CI="", FERRY_NONINTERACTIVE=""),
                            stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        if not answered and b"Trust this key?" in seen:
            os.write(master, b"a\n")
            answered = True
    out, _ = proc.communicate(timeout=30)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace") + out


def test_host_key_decision_waits_for_a_later_client(served: Path, tmp_path: Path):
    out = tmp_path / "out"
    queued = ferry("get", "newhost:small.txt", str(out) + "/", "--detach")
    assert queued.returncode == 0, queued.stderr
    job_id = int(queued.stdout.split()[1])
    waiting = wait_for(lambda: _attention(job_id), what="the job to need attention")
    assert "unknown host key of newhost" in waiting
    listing = ferry("queue", "list")
    assert "needs attention: unknown host key of newhost" in listing.stdout
    assert "needs attention" in ferry("agent", "status").stdout
    time.sleep(1.0)
    assert not (out / "small.txt").exists(), "nothing moves before someone decides"
    code, shown = _interactive("queue", "watch", str(job_id))
    assert "The host key of site 'newhost' is not known yet." in shown
    assert code == 0, shown
    assert (out / "small.txt").read_text() == "hello attention\n"
    assert SiteStore().get("newhost").host_keys, "accept and save pinned the key"


def test_a_non_interactive_follower_fails_closed_as_in_process(served: Path, tmp_path: Path):
    here = ferry("get", "newhost:small.txt", str(tmp_path / "a") + "/", "--no-agent")
    there = ferry("get", "newhost:small.txt", str(tmp_path / "b") + "/")
    assert here.returncode == there.returncode == 7, there.stderr
    assert "ferry sites trust newhost --fingerprint SHA256:" in there.stderr
    assert there.stderr.replace("job 2", "job N") == here.stderr.replace("job 1", "job N")


@pytest.fixture
def locked_site(sshd, tmp_path: Path, agent_home: Path,  # noqa: F811
                client_key: asyncssh.SSHKey) -> tuple[Path, Path]:
    base = tmp_path / "served"
    base.mkdir()
    (base / "small.txt").write_text("behind a passphrase\n")
    key = tmp_path / "id_locked"
    client_key.write_private_key(str(key), passphrase=KEYPASS)
    key.chmod(0o600)
    SiteStore().add(sshd.site("locked", key_file=str(key), remote_dir=str(base)))
    vault = Vault.create(paths.vault_file(), PASS)
    vault.set(secret_name("locked", "passphrase"), KEYPASS)
    vault.save()
    passfile = tmp_path / "vault-pass"
    passfile.write_text(PASS + "\n")
    passfile.chmod(0o600)
    return base, passfile


def test_vault_starts_locked_is_unlocked_over_the_socket_and_relocks(locked_site,
                                                                      tmp_path: Path):
    _base, passfile = locked_site
    assert ferry("agent", "start", "--relock-after", "2").returncode == 0
    status = json.loads(ferry("agent", "status", "--json").stdout)
    assert status["vault"] == "locked"
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    bad = ferry("agent", "unlock", FERRY_VAULT_PASSPHRASE_FILE=str(wrong))
    assert bad.returncode == 4, bad.stderr
    good = ferry("agent", "unlock", FERRY_VAULT_PASSPHRASE_FILE=str(passfile))
    assert good.returncode == 0, good.stderr
    assert json.loads(ferry("agent", "status", "--json").stdout)["vault"] == "unlocked"
    wait_for(lambda: json.loads(ferry("agent", "status", "--json").stdout)["vault"]
             == "locked", timeout=15, what="the idle relock")


def test_a_job_needing_the_vault_is_unlocked_by_its_client(locked_site, tmp_path: Path):
    _base, passfile = locked_site
    out = tmp_path / "out"
    result = ferry("get", "locked:small.txt", str(out) + "/",
                   FERRY_VAULT_PASSPHRASE_FILE=str(passfile))
    assert result.returncode == 0, result.stderr
    assert (out / "small.txt").read_text() == "behind a passphrase\n"
    pid = agent_pid(tmp_path)
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"FERRY_VAULT_PASSPHRASE_FILE" not in environ, "the agent never reads the file"
    assert PASS.encode() not in environ
