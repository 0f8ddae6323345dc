"""A Ferry TUI in its own process, driven by Pilot, for the agent tests that kill it
(tests/test_agent_tui.py): ``python -m tests.agent_tui_driver SITE NAME LOCAL_DIR`` opens the
browser on SITE with LOCAL_DIR on the left, copies NAME (F5) from the right pane, prints
``moving JOB`` once the agent reports bytes moving, and then idles until it is killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.tui import wait_for
from tests.tui.browser_kit import browser, goto
from tui.app import FerryApp


async def main(site: str, name: str, local: Path) -> None:
    app = FerryApp(start_site=site, demo=SimpleNamespace(local_dir=local), use_agent=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        screen.right.table.focus()
        await goto(pilot, screen.right, name)
        await pilot.press("f5")

        def moving() -> bool:
            engine = app.engine
            return engine is not None and any(
                j.state == "running" and j.bytes_done > 0 for j in engine.jobs())

        await wait_for(pilot, moving, seconds=60)
        assert app.engine is not None
        job = next(j for j in app.engine.jobs() if j.state == "running")
        print(f"moving {job.id} agent {app.engine.pid}", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
