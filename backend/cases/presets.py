"""The case layout presets: the one place that names each preset's default folders.

A site's ``layout`` picks a preset; ``Site.layout_folders`` overrides any of its folder names
(relative to the site's ``remote_dir``). Where a site configures nothing, the folder is first
detected in the site's root (``From_*``, ``To_*``, ``Old_Cases``; see
:func:`backend.cases.layout.resolve_folders`) and only then falls back to these defaults.
Pure data: no imports from the rest of Ferry, so any module may use it.
"""

from __future__ import annotations

INBOX_OUTBOX = "inbox-outbox"
STUDY_IO = "study-io"
GENERIC = "generic"

DEFAULT_FOLDERS: dict[str, dict[str, str]] = {
    INBOX_OUTBOX: {"inbox": "From_Provider", "outbox": "To_Provider", "archive": "Old_Cases"},
    STUDY_IO: {"input": "input", "output": "output"},
    GENERIC: {},
}

# study-io: a study's result folder is ``<output>/<study_id><RESULT_SUFFIX>``
RESULT_SUFFIX = "_out"

FOLDER_KEYS: dict[str, tuple[str, ...]] = {
    layout: tuple(folders) for layout, folders in DEFAULT_FOLDERS.items()
}


def default_folders(layout: str) -> dict[str, str]:
    """The preset's default folder names for ``layout`` (empty for ``generic``/unknown)."""
    return dict(DEFAULT_FOLDERS.get(layout, {}))
