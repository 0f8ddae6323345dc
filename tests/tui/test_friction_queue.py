"""The queue panel (issue 14 friction): newest first, as tall as the terminal allows, and
finished jobs can be cleared (``x``/Del on a finished row, ``C`` for all; ``ferry queue clear``
from the CLI), backed by ``backend.transfers.journal.forget_finished``."""

from __future__ import annotations

import json

from backend.transfers.journal import Journal
from backend.transfers.model import JobSpec
from tests.agent_helpers import ferry
from tests.tui import wait_for
from tests.tui.browser_kit import browser, local_dir
from tui.app import FerryApp
from tui.screens.browser import BrowserScreen
from tui.widgets.queue_panel import QueuePanel


def _finished_jobs(count: int) -> list[int]:
    """``count`` finished jobs in the journal, oldest first (labels job-0, job-1, ...)."""
    journal = Journal()
    ids = []
    for n in range(count):
        job = journal.add_job(JobSpec("put", "lab", [f"/tmp/job-{n}"], "/data"))
        journal.set_job_state(job, "done" if n % 3 else "failed", None if n % 3 else "boom")
        ids.append(job)
    return ids


async def _panel(pilot, app: FerryApp) -> QueuePanel:
    await app.push_screen(BrowserScreen())
    screen = await browser(pilot)
    await pilot.press("t")
    panel = screen.query_one(QueuePanel)
    await wait_for(pilot, lambda: panel.table.row_count > 0 and app.focused is panel.table)
    return panel


def _labels(panel: QueuePanel) -> list[str]:
    return [r.label for r in panel.model.rows()]


async def test_queue_panel_is_newest_first_and_uses_the_height(
    ferry_home, tmp_path, monkeypatch
) -> None:
    local_dir(tmp_path, monkeypatch)
    _finished_jobs(40)
    app = FerryApp()
    async with app.run_test(size=(220, 60)) as pilot:
        panel = await _panel(pilot, app)
        await wait_for(pilot, lambda: panel.table.row_count == 40)
        assert "job-39" in _labels(panel)[0] and "job-0" in _labels(panel)[-1]
        first = str(panel.table.get_row_at(0)[0])
        assert "job-39" in first
        # at 220×60 the table shows far more than the ~6 rows of a fixed 12-line panel
        assert panel.table.size.height - 1 >= 18  # (one line is the header)


async def test_finished_jobs_can_be_cleared(ferry_home, tmp_path, monkeypatch) -> None:
    local_dir(tmp_path, monkeypatch)
    ids = _finished_jobs(3)
    app = FerryApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        panel = await _panel(pilot, app)
        await wait_for(pilot, lambda: panel.table.row_count == 3)
        await pilot.press("x")  # the top row (the newest, finished): forgotten, no question
        await wait_for(pilot, lambda: panel.table.row_count == 2)
        assert [s.id for s in Journal().statuses()] == ids[:2]
        await pilot.press("C")
        await wait_for(pilot, lambda: panel.table.row_count == 0)
        assert Journal().statuses() == []


def test_ferry_queue_clear_forgets_finished_jobs_only(ferry_home) -> None:
    ids = _finished_jobs(2)
    journal = Journal()
    waiting = journal.add_job(JobSpec("put", "lab", ["/tmp/waiting"], "/data"))
    home = {"FERRY_HOME": str(ferry_home), "FERRY_NO_AGENT": "1"}
    refused = ferry("queue", "clear", str(waiting), **home)
    assert refused.returncode != 0 and "not finished" in refused.stderr
    one = ferry("queue", "clear", str(ids[0]), **home)
    assert one.returncode == 0 and "forgot 1 finished job" in one.stdout
    rest = ferry("queue", "clear", "--json", **home)
    assert rest.returncode == 0 and json.loads(rest.stdout) == {"forgotten": [ids[1]]}
    assert [s.id for s in Journal().statuses()] == [waiting]
