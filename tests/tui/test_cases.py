"""The case view against the in-process SFTP server with the demo's sample layouts: send a
study from the browser, results becoming ready (background poll + notification), fetch, the
report in the viewer, and archiving exactly the previewed inbox cases. Plus the backend helper
behind "fetch": ``fetch_results`` downloads settled results in one call."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

from backend import ssh
from backend.cases.fetch import fetch_results
from backend.cases.store import CaseStore
from backend.cases.transport import engine_for
from backend.cases.watch import watch_once
from backend.demo.samples import populate
from backend.session import Session
from backend.sites.store import SiteStore
from tests.tui import notifications, wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, register_site
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog, TextInputDialog
from tui.screens.cases import CasesScreen
from tui.screens.viewer import ViewerScreen

REPORT = "study {id}\nmodel: test-v1\nprobability_abnormal: 0.91\nresult: REVIEW\n"


def states(screen: CasesScreen) -> dict[str, str]:
    return {c.case_id: c.state for c in screen.cases}


def write_results(root: Path, study: str) -> None:
    """What the provider does hours later: ``output/<id>_out/`` with the report."""
    out = root / "ai" / "output" / f"{study}_out"
    out.mkdir(parents=True)
    (out / "prediction.txt").write_text(REPORT.format(id=study))
    (out / "aidp.csv").write_text("metric,value\nscore,0.91\n")


async def test_send_a_study_then_fetch_results_and_read_the_report(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    created = populate(sftp_server.root, large_file_mib=1)
    monkeypatch.setattr("tui.screens.cases.POLL_INTERVAL", 0.3)
    local = tmp_path / "local"
    study_dir = local / "study-x"
    (study_dir / "series_001").mkdir(parents=True)
    (study_dir / "series_001" / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"x" * 5000)
    (study_dir / "notes.txt").write_text("rule out bleed\n")
    monkeypatch.chdir(local)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    app = FerryApp(start_site="ai")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        browse = await browser(pilot)
        await goto(pilot, browse.left, "study-x")
        await pilot.press("c")
        screen = await wait_for_screen(pilot, CasesScreen)
        await wait_for(pilot, lambda: screen.loaded)
        assert [states(screen)[s] for s in created["studies"]] == [
            "results ready", "results ready", "processing"]

        # send: the path is prefilled with the local pane's selection
        await pilot.press("s")
        dialog = await wait_for_screen(pilot, TextInputDialog)
        assert dialog.query_one("#value").value == str(study_dir)
        await pilot.press("enter")
        # not one clean study: the refusal lists what it found and offers the one way on
        confirm = await wait_for_screen(pilot, ConfirmDialog)
        assert any("not DICOM: notes.txt" in line for line in confirm.lines)
        assert confirm.query_one("#confirm").label.plain == "Send them too"
        await pilot.press("tab", "enter")  # Cancel has the focus: Tab to the action
        await wait_for(pilot, lambda: len(screen.cases) == 4, seconds=30)
        study = next(c.case_id for c in screen.cases if c.case_id not in created["studies"])
        assert states(screen)[study] == "processing"
        uploaded = sftp_server.root / "ai" / "input" / study / "input" / f"{study}.zip"
        with zipfile.ZipFile(uploaded) as zf:
            assert sorted(zf.namelist()) == ["notes.txt", "series_001/IM0001.dcm"]
            assert zf.read("notes.txt") == b"rule out bleed\n"
        assert any(f"study {study} sent" in n for n in notifications(app))

        # the provider writes results; the background poll notices and says so
        write_results(sftp_server.root, study)
        await wait_for(pilot, lambda: states(screen)[study] == "results ready")
        await wait_for(pilot, lambda: f"results ready: {study} on ai" in notifications(app))

        # fetch (the highlighted case): downloaded (and verified) once stable; the report
        # opens in the viewer
        row = [c.case_id for c in screen.cases].index(study)
        screen.table.move_cursor(row=row)
        await pilot.pause()
        await pilot.press("f")
        await wait_for(pilot, lambda: states(screen)[study] == "downloaded", seconds=40)
        record = CaseStore().get("ai", study)
        assert record is not None and record.report_path
        assert Path(record.report_path).read_text() == REPORT.format(id=study)
        await pilot.press("enter")
        viewer = await wait_for_screen(pilot, ViewerScreen)
        await wait_for(pilot, lambda: "probability_abnormal: 0.91" in _viewer_text(viewer))


def _viewer_text(viewer: ViewerScreen) -> str:
    from textual.widgets import TextArea

    areas = viewer.query(TextArea)
    return areas.first().text if areas else ""


async def test_archive_moves_exactly_the_previewed_inbox_cases(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    populate(sftp_server.root, large_file_mib=1)
    monkeypatch.chdir(tmp_path)
    register_site(sftp_server, "idt", remote_dir="/idt", layout="inbox-outbox")
    inbox = sftp_server.root / "idt" / "From_IDT"
    chosen = ["CASE-20261118-0031", "CASE-20261120-0033"]
    years = {c: time.localtime((inbox / c).stat().st_mtime).tm_year for c in chosen}
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        screen = CasesScreen("idt")
        app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
        ids = [c.case_id for c in screen.cases]
        for case in chosen:
            screen.table.move_cursor(row=ids.index(case))
            await pilot.pause()
            await pilot.press("space")
        assert screen.marked == set(chosen)
        await pilot.press("a")
        confirm = await wait_for_screen(pilot, ConfirmDialog)
        preview = "\n".join(confirm.lines)
        for case in chosen:
            assert f"{case} → /idt/Old_Cases/{years[case]}/{case}" in preview
        assert "CASE-20261119-0032" not in preview
        assert "Never downloaded to this machine" in preview  # issue 14: warns first
        assert confirm.focused.id == "cancel"  # every confirmation focuses Cancel
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: all(states(screen).get(c) == "archived" for c in chosen))
    for case in chosen:
        assert (sftp_server.root / "idt" / "Old_Cases" / str(years[case]) / case).is_dir()
        assert not (inbox / case).exists()
    assert sorted(p.name for p in inbox.iterdir() if p.is_dir()) == [
        "CASE-20261119-0032", "CASE-20261121-0034"]


async def test_fetch_results_downloads_settled_results_in_one_call(ferry_home, sftp_server):
    created = populate(sftp_server.root, large_file_mib=1)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io")
    site = SiteStore().get("ai")
    ready = created["studies"][:2]
    async with engine_for(Session()) as engine, ssh.sftp_session(site) as (_conn, sftp):
        # one plain poll only observes (stability needs two looks) ...
        first = await watch_once(site, sftp, engine)
        assert sorted(first.waiting) == sorted(ready) and first.downloaded == []
        CaseStore().forget_observation("ai", ready[0])
        CaseStore().forget_observation("ai", ready[1])
        # ... fetch_results looks again after settling and downloads them
        report = await fetch_results(site, sftp, engine, settle=0.1)
    assert sorted(report.downloaded) == sorted(ready) and report.waiting == []
    for study in ready:
        record = CaseStore().get("ai", study)
        assert record is not None and record.state == "downloaded"
        assert Path(record.report_path or "").name == "prediction.txt"
