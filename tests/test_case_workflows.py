"""Sending studies and watching for results, through the transfer engine, on both real servers."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import hashlib
import os
import socket
import threading
import zipfile
from pathlib import Path

from aiosmtpd.controller import Controller

from backend import ssh
from backend.audit import AuditLog
from backend.cases import list_cases, read_report, send_study, watch_loop, watch_once
from backend.cases.store import DOWNLOADED, PROCESSING, READY, SENT, CaseStore
from backend.cases.transport import engine_for
from backend.demo.provider import start_provider
from backend.demo.samples import populate, tiny_png
from backend.demo.server import start_sftp_server
from backend.session import Session
from backend.sites.store import SiteStore
from tests import case_helpers
from tests.case_helpers import snapshot
from tests.hostile import HostileSFTPServer
from tests.servers import InProcessServer, write_private_key

case_server = case_helpers.case_server  # the fixture: in-process server and sshd

STUDY = "5f0c1a2e-0000-4000-8000-00000000abcd"


def connector() -> Session:
    """The wiring every face uses (backend/session.py), with nobody to ask."""
    return Session()


def make_study(folder: Path, mib: int = 6) -> dict[str, bytes]:
    files = {
        f"series_001/IM{i:04d}.dcm": b"\0" * 128 + b"DICM" + os.urandom(mib * 1024 * 1024 // 4)
        for i in range(4)
    }
    files["notes.txt"] = b"clinical question: rule out bleed\n"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return files


class FolderWatcher(threading.Thread):
    """Looks at a served folder as fast as it can while an upload runs (like a provider would)."""

    def __init__(self, folder: Path, final: str) -> None:
        super().__init__(daemon=True)
        self.folder, self.final = folder, final
        self.stop = threading.Event()
        self.names: set[str] = set()
        self.final_sizes: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.folder):
                    self.names.add(entry.name)
                    if entry.name == self.final:
                        self.final_sizes.add(entry.stat().st_size)


async def test_a_sent_study_appears_under_its_final_name_only_when_complete(
    case_server, tmp_path: Path
) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("ai", "study-io", "site/ai")
    files = make_study(tmp_path / "study")
    target = base / "ai" / "input" / STUDY / "input"
    watcher = FolderWatcher(target, f"{STUDY}.zip")
    watcher.start()
    try:
        async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
            sent = await send_study(site, sftp, engine, tmp_path / "study", study_id=STUDY)
    finally:
        watcher.stop.set()
        watcher.join()
    final = target / f"{STUDY}.zip"
    assert sent.remote_path.endswith(f"input/{STUDY}/input/{STUDY}.zip")
    assert watcher.final_sizes == {sent.size}, "the final name never showed a partial file"
    assert watcher.names <= {f"{STUDY}.zip", f"{STUDY}.zip{site.temp_suffix}"}
    assert hashlib.sha256(final.read_bytes()).hexdigest() == sent.sha256
    with zipfile.ZipFile(final) as zf:
        assert sorted(zf.namelist()) == sorted(files)
        assert all(zf.read(n) == data for n, data in files.items())
    record = CaseStore().get("ai", STUDY)
    assert record is not None and record.state == SENT and record.sha256 == sent.sha256
    assert record.source == str((tmp_path / "study").resolve())
    assert [r.fields["study"] for r in AuditLog().query(event="case.sent")] == [STUDY]
    assert not any((Path(os.environ["FERRY_HOME"]) / "state" / "outgoing").iterdir())


async def test_an_existing_zip_goes_to_the_outbox_and_a_reused_id_is_refused(
    case_server, tmp_path: Path
) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("idt", "inbox-outbox", "site/idt")
    src = tmp_path / "given.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("a.dcm", b"DICM" * 100)
    async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
        sent = await send_study(site, sftp, engine, src)
        assert (base / "idt" / "To_IDT" / f"{sent.study_id}.zip").read_bytes() == src.read_bytes()
        try:
            await send_study(site, sftp, engine, src, study_id=sent.study_id)
        except Exception as exc:
            assert "already sent" in str(exc)
        else:
            raise AssertionError("a study id must not be sent twice")
        states = {c.case_id: c.state for c in await list_cases(site, sftp)}
    assert states[sent.study_id] == SENT


async def test_results_download_only_once_stable_and_never_twice(
    case_server, tmp_path: Path
) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("ai", "study-io", "site/ai")
    out = base / "ai" / "output" / f"{STUDY}_out"
    (base / "ai" / "input" / STUDY / "input").mkdir(parents=True)
    (base / "ai" / "input" / STUDY / "input" / f"{STUDY}.zip").write_bytes(b"PK\5\6" + b"\0" * 18)
    into = tmp_path / "cases"
    events: list[tuple[str, str]] = []

    async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):

        async def poll():
            return await watch_once(site, sftp, engine, into=into,
                                    on_event=lambda e: events.append((e.kind, e.case_id)))

        first = await poll()  # the two sample results settle first; they download on poll 2
        assert first.downloaded == [] and not (into / STUDY).exists()
        await poll()
        events.clear()
        out.mkdir(parents=True)  # the provider starts writing, slowly
        (out / "prediction.txt").write_text(f"study {STUDY}\nresult: REVIEW\n\x1b[31mred\x1b[0m\n")
        assert STUDY in (await poll()).waiting
        with open(out / "prediction.png", "wb") as fh:
            fh.write(tiny_png()[:40])
        assert STUDY in (await poll()).waiting, "still changing: not ready"
        with open(out / "prediction.png", "ab") as fh:
            fh.write(tiny_png()[40:])
        (out / "aidp.csv").write_text("metric,value\nscore,0.87\n")
        assert STUDY in (await poll()).waiting
        states = {c.case_id: c.state for c in await list_cases(site, sftp)}
        assert states[STUDY] == READY
        report = await poll()
        assert report.downloaded == [STUDY]
        assert ("ready", STUDY) in events and ("downloaded", STUDY) in events
        assert snapshot(into / STUDY) == snapshot(out)
        record = CaseStore().get("ai", STUDY)
        assert record is not None and record.state == DOWNLOADED
        assert record.report_path == str(into / STUDY / "prediction.txt")
        shown = read_report(record.report_path)
        assert "result: REVIEW" in shown and "\x1b" not in shown
        assert {f["sha256"] for f in record.files()} == set(snapshot(out).values())

    marker = (into / STUDY / "aidp.csv").stat().st_mtime_ns
    for _ in range(2):  # after a "restart": a new engine, connection and store each time
        async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
            again = await watch_once(site, sftp, engine, into=into, store=CaseStore())
        assert again.downloaded == [] and again.done == 3
    downloads = [r.fields["case"] for r in AuditLog().query(event="case.results_downloaded")]
    assert downloads.count(STUDY) == 1
    assert (into / STUDY / "aidp.csv").stat().st_mtime_ns == marker


async def test_unexpected_provider_content_is_reported_not_fatal(case_server, tmp_path) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    output = base / "ai" / "output"
    (output / "README.txt").write_text("stray file")
    (output / "scratch").mkdir()
    (output / "bell\x07name_out").mkdir()
    os.symlink("/etc", output / "link_out")
    site = case_server.site("ai", "study-io", "site/ai")
    async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
        await watch_once(site, sftp, engine, into=tmp_path / "c")
        report = await watch_once(site, sftp, engine, into=tmp_path / "c")
    assert len(report.downloaded) == 2, "the real results still download"
    text = "\n".join(report.problems)
    assert "README.txt" in text and "scratch" in text and "link_out" in text
    assert "\x07" not in text
    assert not (tmp_path / "c" / "link").exists()


async def test_hostile_names_in_the_result_area_are_reported(
    tmp_path, host_key, client_key, ferry_home
) -> None:
    key_path = write_private_key(client_key, tmp_path / "id_h")
    server = await start_sftp_server(
        tmp_path / "hostile", host_key=host_key, authorized_keys=[client_key],
        sftp_factory=HostileSFTPServer,
    )
    try:
        hostile = InProcessServer(server=server, client_key_path=key_path)
        populate(hostile.root, large_file_mib=1)
        site = hostile.site("h", layout="study-io", remote_dir="/ai")
        SiteStore().add(site)
        async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
            first = await watch_once(site, sftp, engine, into=tmp_path / "c")
            second = await watch_once(site, sftp, engine, into=tmp_path / "c")
            cases = await list_cases(site, sftp)
    finally:
        server.close()
    assert any("unsafe remote name" in p for p in first.problems)
    assert all("\x1b" not in p for p in first.problems + second.problems)
    assert len(second.downloaded) == 2, "real results still download next to hostile names"
    for study in second.downloaded:
        got = sorted(p.name for p in (tmp_path / "c" / study).iterdir())
        assert got == ["aidp.csv", "prediction.png", "prediction.txt"]
    assert {c.case_id for c in cases} >= set(second.downloaded)
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(second.downloaded)


async def test_inbox_cases_download_into_per_case_folders(case_server, tmp_path) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("idt", "inbox-outbox", "site/idt")
    async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
        await watch_once(site, sftp, engine)
        report = await watch_once(site, sftp, engine)
        states = {c.case_id: c.state for c in await list_cases(site, sftp)}
    home = Path(os.environ["FERRY_HOME"]) / "cases" / "idt"
    assert sorted(report.downloaded) == sorted(p.name for p in (base / "idt" / "From_IDT").iterdir()
                                               if p.is_dir())
    inbox = base / "idt" / "From_IDT" / "CASE-20261118-0031"
    assert snapshot(home / "CASE-20261118-0031") == snapshot(inbox)
    assert states["CASE-20261118-0031"] == DOWNLOADED
    assert states["CASE-20261121-0040"] == SENT  # waiting in To_IDT
    assert any("README-from-provider.txt" in p for p in report.problems)


async def test_the_simulated_provider_answers_and_the_watcher_waits_for_it(
    case_server, tmp_path
) -> None:
    base = case_server.local("site")
    populate(base, large_file_mib=1)
    site = case_server.site("ai", "study-io", "site/ai")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"x" * 1000)
    # The provider writes a file every spread/6 = 0.1 s; polls are >= 1 s apart, so two polls
    # can only agree once the result is complete (the stability rule needs polls slower than
    # the provider's writes, as in real use with a 30 s interval).
    stop = start_provider(base, delay=0.3, spread=0.6)
    seen: list[str] = []
    try:
        async with engine_for(connector()) as engine, ssh.sftp_session(site) as (_c, sftp):
            sent = await send_study(site, sftp, engine, tmp_path / "study")
            for _ in range(30):  # bounded: the provider finishes within a few seconds
                report = await watch_once(site, sftp, engine, into=tmp_path / "got")
                if sent.study_id in report.waiting:
                    seen.append("waiting")
                if sent.study_id in report.downloaded:
                    break
                states = {c.case_id: c.state for c in await list_cases(site, sftp)}
                seen.append(states[sent.study_id])
                await asyncio.sleep(1.0)
    finally:
        stop()
    assert seen[0] in (SENT, PROCESSING) and "waiting" in seen
    got = tmp_path / "got" / sent.study_id
    assert sorted(p.name for p in got.iterdir()) == ["aidp.csv", "prediction.png", "prediction.txt"]
    assert (got / "prediction.png").read_bytes() == tiny_png()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


async def test_watch_loop_runs_headless_and_emails_a_notice_without_case_names(
    sftp_server, ferry_home, tmp_path
) -> None:
    inbox = _Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "smtp.toml").write_text(
        f'host = "127.0.0.1"\nport = {port}\nstarttls = false\n'
        'from = "ferry@example.org"\nnotify_to = "admin@example.org"\n'
    )
    server = case_helpers.CaseServer("inprocess", sftp_server, sftp_server.root)
    populate(server.local("site"), large_file_mib=1)
    site = server.site("ai", "study-io", "site/ai")
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def open_sftp():
        async with ssh.sftp_session(site) as (_c, sftp):
            yield sftp

    reports = []
    try:
        async with engine_for(connector()) as engine:
            async for report in watch_loop(site, open_sftp, engine, interval=0.2, stop=stop,
                                           into=tmp_path / "got", email=True):
                reports.append(report)
                if report.downloaded or len(reports) > 20:
                    stop.set()
    finally:
        controller.stop()
    assert sorted(reports[-1].downloaded) == sorted(
        p.name[:-4] for p in (sftp_server.root / "site" / "ai" / "output").iterdir())
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    body = mail.get_payload(decode=True).decode()
    assert mail["To"] == "admin@example.org" and "2 new case result(s)" in body
    assert not any(study in body + mail["Subject"] for study in reports[-1].downloaded)
