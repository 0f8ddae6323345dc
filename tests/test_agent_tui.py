"""The TUI is a client of the agent (docs/agent.md, "The TUI"): what it queues runs in the
agent, so it survives the TUI being killed or quitting; jobs started anywhere show in its
queue; the agent's questions are asked in its dialogs.

Real OpenSSH on 127.0.0.1 behind a rate-limited proxy (tests/proxies.py), so a 64 MiB download
is still moving when the TUI is killed or quits.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend import hostkeys
from backend.agent.remote import AgentEngine
from backend.sites.store import SiteStore
from tests.agent_helpers import (
    BIG_SIZE,
    MIB,
    PYTHON,
    ROOT,
    SLOW_SIZE,
    agent_home,  # noqa: F401 (fixture)
    agent_pid,
    alive,
    env,
    ferry,
    job_moving,
    jobs,
    wait_for,
)
from tests.transfer_helpers import sha256_of
from tests.tui import notifications, wait_for_screen
from tests.tui import wait_for as ui_wait_for
from tests.tui.browser_kit import browser, goto
from tui.app import FerryApp
from tui.dialogs import HostKeyDialog
from tui.widgets.queue_panel import QueueSummary

SIZE = SLOW_SIZE


def _state(job_id: int) -> str | None:
    return next((j["state"] for j in jobs() if j["id"] == job_id), None)


def _audited(name: str) -> bool:
    result = ferry("audit", "list", "--json", "--event", "transfer.file")
    assert result.returncode == 0, result.stderr
    return name in result.stdout


@pytest.mark.parametrize("slow_site", [BIG_SIZE], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
def test_tui_killed_mid_download_the_agent_completes_it(slow_site, tmp_path: Path, sig):
    """A TUI (Pilot, in its own process) copies big.bin with F5 and is killed as a dropped SSH
    session kills it: the file completes in the agent with the right bytes and an audit row.
    Before, the TUI ran its own engine and the download died with it."""
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    out.mkdir()
    driver = subprocess.Popen(
        [PYTHON, "-m", "tests.agent_tui_driver", "slow", "big.bin", str(out)],
        env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line.startswith("moving "), line + (driver.stderr.read() if driver.poll() else "")
        job_id = int(line.split()[1])
        os.killpg(driver.pid, sig)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == -sig
    assert _state(job_id) in ("running", "queued"), "killed mid-transfer"
    wait_for(lambda: _state(job_id) == "done", timeout=90, what="the agent to finish the job")
    assert sha256_of(out / "big.bin") == digest
    assert _audited("big.bin")


async def test_quitting_the_tui_leaves_the_transfer_to_the_agent_and_says_so(
        slow_site, tmp_path: Path):
    """q with a download running: no "stop them?" question (they do not stop); the app's exit
    note says how many continue and how to follow them; the agent finishes the file."""
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    out.mkdir()
    app = FerryApp(start_site="slow", demo=SimpleNamespace(local_dir=out))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        assert isinstance(app.engine, AgentEngine), "the TUI is attached to the agent"
        screen.right.table.focus()
        await goto(pilot, screen.right, "big.bin")
        await pilot.press("f5")
        await ui_wait_for(pilot, lambda: any(j.bytes_done > 0 for j in app.engine.jobs()),
                          seconds=60)
        agent = app.engine.pid
        await pilot.press("q")
        await pilot.pause()
    assert app.exit_note is not None
    assert app.exit_note.startswith("1 transfer(s) continue in the background")
    assert "ferry queue watch" in app.exit_note and str(agent) in app.exit_note
    job = next(j for j in jobs() if j["label"].startswith("big.bin"))
    assert job["state"] in ("running", "queued"), "quitting did not stop the transfer"
    wait_for(lambda: _state(job["id"]) == "done", timeout=90, what="the agent to finish")
    assert sha256_of(out / "big.bin") == digest
    assert alive(agent)


async def test_a_job_started_from_the_cli_shows_live_in_the_tui(slow_site, tmp_path: Path):
    """``ferry get --detach`` queues a download in the agent; a TUI opened afterwards shows it
    running in its status bar with growing figures, and announces it when it ends."""
    out = tmp_path / "out"
    queued = ferry("get", "slow:big.bin", str(out) + "/", "--detach")
    assert queued.returncode == 0, queued.stderr
    job_id = int(queued.stdout.split()[1])
    wait_for(lambda: job_moving(job_id), what="the download to move")
    app = FerryApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui_wait_for(pilot, lambda: isinstance(app.engine, AgentEngine))
        assert isinstance(app.engine, AgentEngine)
        first = app.engine.job(job_id).bytes_done
        await ui_wait_for(pilot, lambda: app.engine.job(job_id).bytes_done > first + MIB,
                          seconds=30)
        summary = app.screen.query_one(QueueSummary)
        await ui_wait_for(pilot, lambda: "1 running" in str(summary.render()))
        await ui_wait_for(pilot, lambda: app.engine.job(job_id).state == "done", seconds=90)
        await ui_wait_for(pilot, lambda: any("big.bin" in n for n in notifications(app)))
    assert app.exit_note is None, "nothing was left running"


async def test_the_agent_asks_an_unknown_host_key_in_the_tui(slow_site, sshd, tmp_path: Path):
    """A site without a pinned host key: the job waits in the agent ("needs attention"), the
    attached TUI shows its host-key dialog with the server's fingerprint, accepting it lets
    the agent's job go on to the end."""
    served, _digest, _proxy = slow_site
    SiteStore().add(sshd.site("fresh", pinned=False, remote_dir=str(served)))
    out = tmp_path / "out"
    out.mkdir()
    app = FerryApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui_wait_for(pilot, lambda: isinstance(app.engine, AgentEngine))
        assert isinstance(app.engine, AgentEngine)
        from backend.transfers import JobSpec

        job_id = await app.engine.submit(JobSpec("get", "fresh", ["small.txt"], str(out)))
        dialog = await wait_for_screen(pilot, HostKeyDialog)
        shown = str(dialog.query_one("#fingerprint").render())
        assert hostkeys.fingerprint_of_line(sshd.host_key_line) in shown
        await pilot.click("#accept")
        await ui_wait_for(pilot, lambda: app.engine.job(job_id).state == "done", seconds=60)
    assert (out / "small.txt").read_text() == "hello agent\n"
    assert SiteStore().get("fresh").host_keys == [sshd.host_key_line], "the accepted key was saved"


async def test_a_killed_agent_is_replaced_and_the_tui_says_so(slow_site, tmp_path: Path):
    """kill -9 of the agent while the TUI is attached: the TUI says the agent went away,
    starts a new one, which resumes the download from the journal to the right bytes."""
    _served, digest, _proxy = slow_site
    out = tmp_path / "out"
    out.mkdir()
    app = FerryApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui_wait_for(pilot, lambda: isinstance(app.engine, AgentEngine))
        engine = app.engine
        assert isinstance(engine, AgentEngine)
        from backend.transfers import JobSpec

        job_id = await engine.submit(JobSpec("get", "slow", ["big.bin"], str(out)))
        await ui_wait_for(pilot, lambda: engine.job(job_id).bytes_done > 4 * MIB, seconds=60)
        first = engine.pid
        os.kill(first, signal.SIGKILL)
        await ui_wait_for(pilot, lambda: any("went away" in n for n in notifications(app)))
        await ui_wait_for(pilot, lambda: engine.pid != first and engine.client is not None,
                          seconds=30)
        assert any("attached to the Ferry agent" in n for n in notifications(app))
        await ui_wait_for(pilot, lambda: engine.job(job_id).state == "done", seconds=120)
    assert sha256_of(out / "big.bin") == digest
    assert agent_pid(tmp_path) == engine.pid


async def test_the_vault_passphrase_typed_in_the_tui_unlocks_the_agent_too(
        agent_home: Path, sftp_server, tmp_path: Path):  # noqa: F811
    """A password site: the TUI asks for the vault passphrase once to browse; the download it
    then queues runs in the agent, which got the passphrase from the TUI — no second dialog,
    and the file arrives. Before, the agent's locked vault asked again."""
    from textual.widgets import Input

    from backend.sites.model import secret_name
    from backend.vault import Vault
    from tests.tui import save_site
    from tui.dialogs import SecretDialog

    (sftp_server.root / "data").mkdir()
    (sftp_server.root / "data" / "report.txt").write_text("no acute findings\n")
    save_site(sftp_server.site("pw", user="pwuser", auth="password", key_file=None,
                               remote_dir="/data"))
    vault = Vault.create(agent_home / "vault.bin", "vault master pass")
    vault.set(secret_name("pw", "password"), "correct horse battery staple")
    vault.save()
    out = tmp_path / "out"
    out.mkdir()
    app = FerryApp(start_site="pw", demo=SimpleNamespace(local_dir=out))
    dialogs = 0
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await wait_for_screen(pilot, SecretDialog)
        dialogs += 1
        # typed at once (the browser's loading spinner keeps Pilot from seeing "idle")
        dialog.query_one(Input).value = "vault master pass"
        await pilot.press("enter")
        screen = await browser(pilot)
        assert isinstance(app.engine, AgentEngine)
        screen.right.table.focus()
        await goto(pilot, screen.right, "report.txt")
        await pilot.press("f5")

        def settled() -> bool:
            nonlocal dialogs
            if isinstance(app.screen, SecretDialog):
                dialogs += 1
                app.screen.dismiss(None)
            return any(j.state in ("done", "failed") for j in app.engine.jobs())

        await ui_wait_for(pilot, settled, seconds=60)
        assert [j.state for j in app.engine.jobs()] == ["done"], app.engine.jobs()
    assert dialogs == 1, "the passphrase was asked again for the agent"
    assert (out / "report.txt").read_text() == "no acute findings\n"
