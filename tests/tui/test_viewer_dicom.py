"""The viewer shows a DICOM file as its header (tag, name, VR, value), patient fields masked
until the user presses p; a pydicom sample file and a synthetic study, over SFTP."""

from __future__ import annotations

import shutil

from pydicom.data import get_testdata_file
from textual.widgets import DataTable, TextArea

from backend.dicom.synthetic import SeriesSpec, StudySpec, write_study
from tests.tui import wait_for, wait_for_screen
from tests.tui.browser_kit import browser, goto, local_dir, register_site
from tui.app import FerryApp
from tui.screens.browser import BrowserScreen
from tui.screens.viewer import ViewerScreen


def _rows(table: DataTable) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for index in range(table.row_count):
        tag, name, vr, value = (str(c) for c in table.get_row_at(index))
        out.setdefault(name.strip(), [tag, vr, value])
    return out


async def test_dicom_header_table_masks_patient_fields_until_toggled(
    ferry_home, sftp_server, tmp_path, monkeypatch
):
    data = sftp_server.root / "data"
    write_study(data / "study", StudySpec(series=(SeriesSpec(1, "T1", 1),), padding=300_000))
    (data / "study" / "SE001" / "IM00001.dcm").rename(data / "IM00001.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), data / "CT_small.dcm")
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, remote_dir="/data")
    app = FerryApp(start_site="lab")
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await browser(pilot)
        await pilot.press("tab")
        await goto(pilot, screen.right, "IM00001.dcm")
        await pilot.press("enter")
        viewer = await wait_for_screen(pilot, ViewerScreen)
        await wait_for(pilot, lambda: viewer.query(DataTable))
        assert not viewer.query(TextArea), "a DICOM file is not shown as hex"
        rows = _rows(viewer.query_one(DataTable))
        assert rows["PatientName"] == ["(0010,0010)", "PN", "J.D."]
        assert rows["PatientID"] == ["(0010,0020)", "LO", "********317"]
        assert rows["PatientBirthDate"][2] == "•••"
        assert rows["SeriesDescription"] == ["(0008,103E)", "LO", "T1"]
        assert rows["Modality"][2] == "MR"
        assert "> ReferencedSOPInstanceUID" not in rows  # the first instance references none
        assert "RequestedProcedureID" in {k.lstrip("> ") for k in rows}
        assert "PixelData" not in rows, "the header only"
        assert "masked, press p to show them" in viewer.note
        text = " ".join(" ".join(v) for v in rows.values())
        assert "DOE" not in text and "0042317" not in text and "Elm Street" not in text

        await pilot.press("p")
        await wait_for(pilot, lambda: _rows(viewer.query_one(DataTable))["PatientName"][2]
                       == "DOE^JANE^Q")
        rows = _rows(viewer.query_one(DataTable))
        assert rows["PatientID"][2] == "PID-0042317"
        assert rows["PatientAddress"][2] == "12 Elm Street, Springfield"
        assert "shown in full" in viewer.note
        await pilot.press("p")
        await wait_for(pilot, lambda: _rows(viewer.query_one(DataTable))["PatientName"][2]
                       == "J.D.")

        await pilot.press("escape")
        await wait_for_screen(pilot, BrowserScreen)
        await goto(pilot, screen.right, "CT_small.dcm")
        await pilot.press("v")
        viewer = await wait_for_screen(pilot, ViewerScreen)
        await wait_for(pilot, lambda: viewer.query(DataTable))
        rows = _rows(viewer.query_one(DataTable))
        assert rows["PatientName"][2] == "C.C."  # CompressedSamples^CT1
        assert rows["Modality"][2] == "CT"
        assert rows["StudyInstanceUID"][2] == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
