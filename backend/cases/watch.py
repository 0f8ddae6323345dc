"""Watching for results: poll the provider's result folder, download each result once.

One poll (:func:`watch_once`) lists the result area once (``output/`` for study-io, the inbox
for inbox-outbox) and looks inside only the result folders not yet downloaded. A result counts
as ready only when its signature (every name, kind, size and mtime under it) is non-empty and
the same as at the previous poll; the previous signature is kept in the case store, so the
rule holds across restarts and for ``--once`` runs from cron. A ready result is downloaded
through the transfer engine (verified) into ``<into>/<case id>`` (default
``$FERRY_HOME/cases/<site>/<case id>``), recorded, audited, and announced through ``on_event``
(and by e-mail with ``email=True`` when ``$FERRY_HOME/smtp.toml`` exists). A downloaded case is
never looked at again. Unexpected content (stray files, odd or hostile names) is reported in
:attr:`WatchReport.problems`, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import posixpath
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import asyncssh

from backend import remote
from backend.audit import AuditLog
from backend.cases import presets, transport
from backend.cases.folders import CaseFolders, case_folders
from backend.cases.store import ARCHIVED, DOWNLOADED, PROCESSING, READY, CaseStore, now
from backend.errors import FerryError, RemoteNotFoundError
from backend.fsutil import ensure_private_dir, safe_join
from backend.names import display_name, is_safe_name
from backend.sites.model import Site

log = logging.getLogger("ferry.cases")

REPORT_NAMES = ("prediction.txt", "report.txt")
REPORT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class CaseEvent:
    """What the watcher tells its caller: ``kind`` is ``ready``, ``downloaded`` or ``problem``."""

    kind: str
    site: str
    case_id: str
    message: str
    local_path: str | None = None
    report_path: str | None = None


@dataclass
class WatchReport:
    site: str
    downloaded: list[str] = field(default_factory=list)  # case ids downloaded in this poll
    waiting: list[str] = field(default_factory=list)  # seen, still changing (or empty)
    done: int = 0  # results already downloaded earlier (not looked into)
    problems: list[str] = field(default_factory=list)  # display-safe lines


EventCallback = Callable[[CaseEvent], None]


def cases_root() -> Path:
    """Default home of downloaded cases: ``$FERRY_HOME/cases`` or the user's data dir."""
    if os.environ.get("FERRY_HOME"):
        from backend.paths import ferry_home

        return ensure_private_dir(ferry_home() / "cases")
    import platformdirs

    return ensure_private_dir(Path(platformdirs.user_data_dir("ferry")) / "cases")


def local_case_dir(site: str, case_id: str, into: Path | None) -> Path:
    base = ensure_private_dir(Path(into)) if into is not None else cases_root() / site
    ensure_private_dir(base)
    return safe_join(base, case_id)


def result_area(folders: CaseFolders) -> str:
    return folders.output if folders.layout == presets.STUDY_IO else folders.inbox


def case_id_of(folders: CaseFolders, entry: remote.RemoteEntry) -> str | None:
    """The case id a result-area entry stands for, or None when it is not a result folder."""
    if entry.kind != "dir":
        return None
    if folders.layout == presets.STUDY_IO:
        suffix = presets.RESULT_SUFFIX
        if entry.name.endswith(suffix) and len(entry.name) > len(suffix):
            return entry.name[: -len(suffix)]
        return None
    return entry.name


@dataclass(frozen=True)
class ResultScan:
    signature: str  # every name, kind, size and mtime under the folder (and rejected names)
    files: int
    top: list[str]  # regular files and folders directly inside (what gets downloaded)
    rejected: list[str]


async def scan(sftp: asyncssh.SFTPClient, path: str) -> ResultScan:
    """Look at one result folder (the remote walker: names validated, links never followed)."""
    rejected: list[str] = []
    items = []
    top: list[str] = []
    async for item in remote.walk(sftp, path, rejected=rejected):
        e = item.entry
        items.append([item.relpath, e.kind, e.size, int(e.mtime or 0)])
        if len(item.parts) == 1 and e.kind in ("file", "dir"):
            top.append(e.name)
    files = sum(1 for i in items if i[1] == "file")
    sig = json.dumps({"entries": sorted(items), "rejected": sorted(rejected)})
    return ResultScan(sig, files, sorted(top), rejected)


def find_report(folder: Path) -> Path | None:
    """The text report among downloaded results: prediction.txt, report.txt, else a *.txt."""
    for name in REPORT_NAMES:
        candidate = folder / name
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    texts = sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.is_symlink())
    return texts[0] if texts else None


def read_report(path: str | Path, limit: int = REPORT_LIMIT) -> str:
    """A downloaded text report, made safe to show (control characters replaced, bounded)."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", "replace")
    lines = [display_name(line.replace("\t", "    ")) for line in text.splitlines()]
    if len(data) > limit:
        lines.append(f"... (report longer than {limit // 1024} KiB; open the file to read all)")
    return "\n".join(lines)


async def _email(site: str, count: int) -> str | None:
    """Send the "results ready" notice; returns a problem line or None. No case names in it."""
    from backend.shares import notify

    settings = notify.load_smtp()
    if settings is None or not settings.notify_to:
        return "e-mail notice not sent: no smtp.toml with notify_to in FERRY_HOME"
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = settings.notify_to
    msg["Subject"] = "Case results are ready"
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    msg.set_content(
        f"{count} new case result(s) from site {site} were downloaded and verified.\n\n"
        f"See 'ferry case list {site}' for details.\n"
    )
    try:
        await notify.send(settings, msg)
    except FerryError as exc:
        return exc.message
    return None


async def watch_once(
    site: Site,
    sftp: asyncssh.SFTPClient,
    engine: transport.Engine,
    *,
    into: Path | None = None,
    store: CaseStore | None = None,
    audit: AuditLog | None = None,
    on_event: EventCallback | None = None,
    email: bool = False,
    cases: Collection[str] | None = None,
) -> WatchReport:
    """One poll of ``site``'s result folder; downloads what has become stable (of ``cases``
    only, when given: the TUI's ``f`` on one case)."""
    store = store or CaseStore()
    audit = audit or AuditLog()
    report = WatchReport(site=site.name)
    folders = await case_folders(site, sftp)
    area = result_area(folders)

    def problem(case_id: str, text: str) -> None:
        line = display_name(text)
        report.problems.append(line)
        if on_event is not None:
            on_event(CaseEvent("problem", site.name, case_id, line))

    try:
        listing = await remote.list_dir(sftp, area, links=False)
    except RemoteNotFoundError:
        problem("", f"{area} does not exist on {site.name} yet; nothing to watch")
        return report
    for reason in listing.rejected:
        problem("", f"{area}: skipped {reason}")
    for entry in listing.entries:
        case_id = case_id_of(folders, entry)
        if case_id is None or not is_safe_name(case_id):
            if cases is None:
                kind = "folder" if entry.kind == "dir" else entry.kind
                problem("", f"{area}: ignored unexpected {kind} {entry.name!r}")
            continue
        if cases is not None and case_id not in cases:
            continue
        record = store.get(site.name, case_id)
        if record is not None and record.state in (DOWNLOADED, ARCHIVED):
            report.done += 1
            continue
        result_path = posixpath.join(area, entry.name)
        try:
            found = await scan(sftp, result_path)
        except FerryError as exc:
            problem(case_id, f"{case_id}: cannot look into results: {exc.message}")
            continue
        previous = store.previous_signature(site.name, case_id)
        store.observe(site.name, case_id, found.signature)
        if found.files == 0 or found.signature != previous:
            report.waiting.append(case_id)
            if record is None:
                store.upsert(site.name, case_id, state=PROCESSING, layout=folders.layout)
            continue
        for reason in found.rejected:
            problem(case_id, f"{case_id}: skipped {reason}")
        if record is None or record.state != READY:
            store.upsert(
                site.name, case_id, state=READY, layout=folders.layout, ready_at=now(),
                result_path=result_path,
            )
            if on_event is not None:
                on_event(CaseEvent("ready", site.name, case_id, f"results ready: {case_id}"))
        try:
            await _download(site, sftp, engine, case_id, result_path, found, into, store, audit)
        except FerryError as exc:
            problem(case_id, f"{case_id}: download failed, will retry: {exc.message}")
            continue
        report.downloaded.append(case_id)
        record = store.get(site.name, case_id)
        assert record is not None
        if on_event is not None:
            on_event(
                CaseEvent(
                    "downloaded", site.name, case_id, f"results downloaded: {case_id}",
                    local_path=record.local_path, report_path=record.report_path,
                )
            )
    if email and report.downloaded:
        failed = await _email(site.name, len(report.downloaded))
        if failed:
            problem("", failed)
    return report


async def _download(
    site: Site,
    sftp: asyncssh.SFTPClient,
    engine: transport.Engine,
    case_id: str,
    result_path: str,
    found: ResultScan,
    into: Path | None,
    store: CaseStore,
    audit: AuditLog,
) -> None:
    local = local_case_dir(site.name, case_id, into)
    ensure_private_dir(local)
    files = await transport.download_folder(engine, site.name, result_path, found.top, local)
    after = await scan(sftp, result_path)
    if after.signature != found.signature:
        store.observe(site.name, case_id, after.signature)
        raise FerryError(f"results of {case_id} changed during the download")
    report = find_report(local)
    store.upsert(
        site.name,
        case_id,
        state=DOWNLOADED,
        downloaded_at=now(),
        local_path=str(local),
        report_path=str(report) if report else None,
        result_path=result_path,
        result_files=json.dumps(files),
    )
    store.forget_observation(site.name, case_id)
    audit.append(
        "case.results_downloaded",
        site=site.name,
        case=case_id,
        remote=result_path,
        local=str(local),
        files=files,
    )


async def watch_loop(
    site: Site,
    open_sftp: Callable[[], AbstractAsyncContextManager[asyncssh.SFTPClient]],
    engine: transport.Engine,
    *,
    interval: float = 60.0,
    stop: asyncio.Event | None = None,
    **kwargs: object,
) -> AsyncIterator[WatchReport]:
    """Poll forever (until ``stop`` is set), one report per poll; reconnects after failures."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            async with open_sftp() as sftp:
                while not stop.is_set():
                    # watch_once's keyword options, passed through as the caller gave them
                    yield await watch_once(site, sftp, engine, **kwargs)  # type: ignore[arg-type]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
        except FerryError as exc:
            yield WatchReport(site=site.name, problems=[f"poll failed: {exc.message}"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
