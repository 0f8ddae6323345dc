"""Which folders of a site are cases, and in what state: UI-free, transport-free.

A site's ``layout`` says how its provider arranges cases (docs/architecture.md §1):

* ``inbox-outbox``: processed cases arrive in ``From_<Provider>/``, uploads go to
  ``To_<Provider>/``, old cases live in ``Old_Cases/<year>/``;
* ``study-io``: each study is uploaded to ``input/<id>/input/<id>.zip`` and its results come back
  in ``output/<id>_out/``.

:func:`case_markers` takes the site's layout, its root folder, the folder being shown and that
folder's entries, plus an async ``list_names(path)`` used to look at the folders the states
depend on (the archive, the output folder), and returns a :class:`CaseMarker` per entry that is
a case, a study or a layout area. Folder names come from ``Site.layout_folders`` when set, else
are detected (``From_*``, ``To_*``, ``Old_Cases``; ``input``, ``output``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from backend.errors import FerryError
from backend.remote import RemoteEntry

ListNames = Callable[[str], Awaitable[set[str]]]

MAX_ARCHIVE_YEARS = 50


@dataclass(frozen=True)
class CaseMarker:
    role: str  # "area", "case" or "study"
    state: str  # short label for a column: "new", "archived", "results ready", ...
    detail: str  # one line for a status bar


@dataclass(frozen=True)
class LayoutFolders:
    inbox: str | None = None
    outbox: str | None = None
    archive: str | None = None
    input: str | None = None
    output: str | None = None


def resolve_folders(
    layout: str, configured: Mapping[str, str], root_names: Iterable[str]
) -> LayoutFolders:
    """The layout's folder names: configured ones win, the rest are detected in the root."""
    names = sorted(root_names)

    def pick(key: str, match: Callable[[str], bool]) -> str | None:
        if configured.get(key):
            return configured[key].strip("/")
        return next((n for n in names if match(n)), None)

    if layout == "inbox-outbox":
        return LayoutFolders(
            inbox=pick("inbox", lambda n: n.lower().startswith("from_")),
            outbox=pick("outbox", lambda n: n.lower().startswith("to_")),
            archive=pick("archive", lambda n: n.lower() in ("old_cases", "archive")),
        )
    if layout == "study-io":
        return LayoutFolders(
            input=pick("input", lambda n: n == "input"),
            output=pick("output", lambda n: n == "output"),
        )
    return LayoutFolders()


def relative(root: str, path: str) -> str | None:
    """``path`` relative to ``root`` ('' for the root itself); None when outside it."""
    root = posixpath.normpath(root or ".")
    path = posixpath.normpath(path or ".")
    if path == root:
        return ""
    prefix = root.rstrip("/") + "/"
    if root == ".":
        return None if path.startswith(("/", "..")) else path
    return path[len(prefix):] if path.startswith(prefix) else None


async def _names(list_names: ListNames, path: str) -> set[str]:
    try:
        return await list_names(path)
    except FerryError:
        return set()


def _dirs(entries: Iterable[RemoteEntry]) -> list[RemoteEntry]:
    return [e for e in entries if e.kind == "dir"]


async def case_markers(
    layout: str,
    root: str,
    path: str,
    entries: Iterable[RemoteEntry],
    list_names: ListNames,
    configured: Mapping[str, str] | None = None,
) -> dict[str, CaseMarker]:
    """Case markers for the entries of ``path`` (a folder of a site whose layout is ``layout``
    and whose case root is ``root``). Entries that are not cases get no marker."""
    if layout not in ("inbox-outbox", "study-io"):
        return {}
    rel = relative(root, path)
    if rel is None:
        return {}
    entries = list(entries)
    root_names = (
        {e.name for e in _dirs(entries)} if rel == "" else await _names(list_names, root)
    )
    folders = resolve_folders(layout, configured or {}, root_names)
    if layout == "inbox-outbox":
        return await _inbox_outbox(folders, root, rel, entries, list_names)
    return await _study_io(folders, root, rel, entries, list_names)


def _areas(
    dirs: list[RemoteEntry], areas: Mapping[str | None, tuple[str, str]]
) -> dict[str, CaseMarker]:
    """Markers for a layout's top-level folders (``name -> (state, detail)``; a folder the
    layout did not find is None and marks nothing)."""
    return {e.name: CaseMarker("area", *areas[e.name]) for e in dirs if e.name in areas}


async def _inbox_outbox(
    f: LayoutFolders, root: str, rel: str, entries: list[RemoteEntry], list_names: ListNames
) -> dict[str, CaseMarker]:
    out: dict[str, CaseMarker] = {}
    dirs = _dirs(entries)
    if rel == "":
        return _areas(dirs, {
            f.inbox: ("inbox", "cases from the provider"),
            f.outbox: ("outbox", "cases waiting for the provider"),
            f.archive: ("archive", "old cases by year"),
        })
    if f.inbox and rel == f.inbox:
        archived: set[str] = set()
        if f.archive:
            archive = posixpath.join(root, f.archive)
            years = sorted(await _names(list_names, archive))[-MAX_ARCHIVE_YEARS:]
            for year in years:
                archived |= await _names(list_names, posixpath.join(archive, year))
        for e in dirs:
            if e.name in archived:
                out[e.name] = CaseMarker("case", "archived", "case already in the archive")
            else:
                out[e.name] = CaseMarker("case", "new", "new case from the provider")
        return out
    if f.outbox and rel == f.outbox:
        for e in dirs:
            out[e.name] = CaseMarker("case", "outgoing", "waiting for the provider to collect")
        return out
    if f.archive and rel == f.archive:
        for e in dirs:
            out[e.name] = CaseMarker("area", "year", f"cases archived in {e.name}")
        return out
    if f.archive and posixpath.dirname(rel) == f.archive:
        for e in dirs:
            out[e.name] = CaseMarker("case", "archived", f"archived in {posixpath.basename(rel)}")
    return out


async def _study_io(
    f: LayoutFolders, root: str, rel: str, entries: list[RemoteEntry], list_names: ListNames
) -> dict[str, CaseMarker]:
    out: dict[str, CaseMarker] = {}
    dirs = _dirs(entries)
    if rel == "":
        return _areas(dirs, {
            f.input: ("input", "one folder per uploaded study"),
            f.output: ("output", "results, one <study>_out folder each"),
        })
    if f.input and rel == f.input:
        results = (
            await _names(list_names, posixpath.join(root, f.output)) if f.output else set()
        )
        for e in dirs:
            if f"{e.name}_out" in results:
                out[e.name] = CaseMarker("study", "results ready", "results are in output/")
            else:
                out[e.name] = CaseMarker("study", "processing", "uploaded; no results yet")
        return out
    if f.output and rel == f.output:
        for e in dirs:
            if e.name.endswith("_out") and len(e.name) > 4:
                out[e.name] = CaseMarker(
                    "study", "results", f"results of study {e.name[:-4]}"
                )
    return out
