"""Case workflows over the layout presets (docs/architecture.md §1): send, watch, archive, list.

The API the CLI (``ferry case``) and the TUI's case view call; see docs/cases.md:

* :func:`list_cases` / :func:`case_list` — every case of a site with its state;
* :func:`send_study` — pack a study into ``<id>.zip`` and upload it (via the transfer engine);
* :func:`watch_once` / :func:`watch_loop` — download results once they are stable;
* :func:`archive` / :func:`plan_archive` — move old cases to ``<archive>/<year>/``;
* :func:`read_report` — a downloaded text report, safe to display.

Layout folder names: :mod:`backend.cases.presets`; per-entry markers for the browser:
:mod:`backend.cases.layout`; state store: :mod:`backend.cases.store`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "archiving": ["ArchiveMove", "ArchivePlan", "ArchiveResult", "archive", "parse_age",
                "plan_archive"],
    "send": ["SentStudy", "direct_mode_warning", "send_study"],
    "status": ["CaseList", "CaseStatus", "case_list", "list_cases"],
    "store": ["STATES", "CaseRecord", "CaseStore"],
    "watch": ["CaseEvent", "WatchReport", "read_report", "watch_loop", "watch_once"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Lazy re-exports, so importing ``backend.cases.layout`` stays light."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'backend.cases' has no attribute {name!r}")
    return getattr(importlib.import_module(f"backend.cases.{module}"), name)
