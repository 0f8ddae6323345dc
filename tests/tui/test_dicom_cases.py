"""The case view's send of real DICOM (pydicom-written studies) to the in-process SFTP server:
a mixed folder is refused with its list and the confirmation offers Split (one zip per study);
a site that requires de-identified data refuses an identifiable study and offers De-identify,
after which the case shows its original patient, masked."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from backend import paths
from backend.vault import Vault
from tests import dicom_helpers as dh
from tests.tui import wait_for, wait_for_screen
from tests.tui.browser_kit import browser, register_site
from tui.app import FerryApp
from tui.dialogs import ConfirmDialog, TextInputDialog
from tui.screens.cases import CasesScreen

PASSPHRASE = "correct horse battery staple"


def zips(root: Path) -> dict[str, dict[str, bytes]]:
    out = {}
    for path in sorted((root / "ai" / "input").glob("*/input/*.zip")):
        with zipfile.ZipFile(path) as zf:
            out[path.stem] = {n: zf.read(n) for n in zf.namelist()}
    return out


async def send(pilot, screen: CasesScreen, folder: Path) -> ConfirmDialog:
    await pilot.press("s")
    dialog = await wait_for_screen(pilot, TextInputDialog)
    dialog.query_one("#value").value = str(folder)
    await pilot.press("enter")
    return await wait_for_screen(pilot, ConfirmDialog)


@pytest.fixture
def vault_file(tmp_path: Path, ferry_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("FERRY_VAULT_PASSPHRASE_FILE", str(secret))
    Vault.create(paths.vault_file(), PASSPHRASE).save()


async def test_split_and_deidentify_from_the_case_view(
    ferry_home, vault_file, sftp_server, tmp_path, monkeypatch
):
    (sftp_server.root / "ai" / "input").mkdir(parents=True)
    (sftp_server.root / "ai" / "output").mkdir()
    first, _second = dh.mixed_folder(tmp_path / "mixed")
    monkeypatch.chdir(tmp_path)
    register_site(sftp_server, "ai", remote_dir="/ai", layout="study-io",
                  require_deidentified=True)
    app = FerryApp(start_site="ai")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await browser(pilot)
        await pilot.press("c")
        screen = await wait_for_screen(pilot, CasesScreen)
        await wait_for(pilot, lambda: screen.loaded)

        confirm = await send(pilot, screen, tmp_path / "mixed")
        assert "holds 2 studies, 1 non-DICOM file" in confirm.title_text
        assert any(f"study {first.study_uid}" in line for line in confirm.lines)
        assert any("not DICOM: report.pdf" in line for line in confirm.lines)
        assert confirm.query_one("#confirm").label.plain == "Split"
        await pilot.press("tab", "enter")  # Cancel has the focus: Tab to the action
        # both studies are identifiable and the site requires de-identified data
        confirm = await wait_for_screen(pilot, ConfirmDialog)
        assert "site ai requires de-identified studies" in confirm.title_text
        assert any(line.startswith("PatientName (0010,0010): 11 files")
                   for line in confirm.lines), confirm.lines
        assert confirm.query_one("#confirm").label.plain == "De-identify"
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: len(screen.cases) == 2, seconds=30)
        sent = zips(sftp_server.root)
        assert sorted(len(m) for m in sent.values()) == [2, 9]
        for members in sent.values():
            for blob in members.values():
                assert b"DOE^JANE" not in blob and b"ROE^RICHARD" not in blob
                assert dcmread(io.BytesIO(blob)).PatientIdentityRemoved == "YES"
        patients = sorted(c.patient["name"] for c in screen.cases if c.patient)
        assert patients == ["J.D.", "R.R."]
        screen.table.move_cursor(row=0)
        await pilot.pause()
        detail = str(screen.query_one("#case-detail").render())
        assert "patient" in detail and "DOE" not in detail
