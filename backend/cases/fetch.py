"""Fetching results on request ("fetch now" in the TUI's case view).

:func:`watch_once` downloads a result only once it looked the same at two consecutive polls.
A person asking for results now should not wait for the next scheduled poll, so
:func:`fetch_results` polls, and while results are still settling (seen for the first time,
or changed since the previous poll) waits ``settle`` seconds and polls again, at most
``attempts`` times. The stability rule is unchanged: nothing half-written is downloaded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from backend.cases import transport
from backend.cases.watch import WatchReport, watch_once
from backend.sites.model import Site


async def fetch_results(
    site: Site,
    sftp: asyncssh.SFTPClient,
    engine: transport.Engine,
    *,
    cases: list[str] | None = None,
    settle: float = 1.0,
    attempts: int = 3,
    **watch_kwargs: Any,
) -> WatchReport:
    """Poll until nothing (of ``cases``, if given: only those are looked at and downloaded)
    is still settling; one merged report.

    ``watch_kwargs`` go to :func:`watch_once` (``into``, ``on_event``, ``store``...).
    """
    merged = WatchReport(site=site.name)
    for attempt in range(max(1, attempts)):
        report = await watch_once(site, sftp, engine, cases=cases, **watch_kwargs)
        merged.downloaded.extend(report.downloaded)
        merged.problems.extend(p for p in report.problems if p not in merged.problems)
        merged.done = report.done
        waiting = [c for c in report.waiting if cases is None or c in cases]
        merged.waiting = waiting
        if not waiting or attempt == attempts - 1:
            break
        await asyncio.sleep(settle)
    return merged
