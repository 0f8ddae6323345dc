"""The case list the TUI's case view and ``ferry case list`` show: server state + case store.

:func:`list_cases` does a handful of listings (the site root, and input+output or
inbox+outbox; never a walk) and merges them with the store's rows, so a case appears once with
its state: ``sending`` (its upload is under way or was interrupted: ``ferry queue resume`` or
``ferry case send --study-id`` again), ``send failed``, ``sent`` (uploaded, still waiting in
the outbox), ``processing`` (uploaded, no results yet), ``results ready`` (results on the
server, not downloaded), ``downloaded`` (verified local copy; ``report_path`` names its text
report) or ``archived``. A case sent de-identified (``deidentified``) is shown against its
original patient when the caller passes the vault's mappings (backend/dicom/mapping.py).
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncssh

from backend import remote
from backend.cases import presets
from backend.cases.folders import case_folders
from backend.cases.store import (
    ARCHIVED,
    DOWNLOADED,
    PROCESSING,
    READY,
    SEND_FAILED,
    SENDING,
    SENT,
    CaseRecord,
    CaseStore,
)
from backend.cases.watch import case_id_of
from backend.errors import RemoteNotFoundError
from backend.names import is_safe_name
from backend.sites.model import Site

if TYPE_CHECKING:  # pydicom is imported only when a case was de-identified
    from backend.dicom.deidentify import StudyMapping
    from backend.dicom.mapping import MappingStore


@dataclass
class CaseStatus:
    site: str
    case_id: str
    state: str
    on_server: bool = False  # a result/case folder exists on the server now
    sent_at: str | None = None
    ready_at: str | None = None
    downloaded_at: str | None = None
    archived_at: str | None = None
    source: str | None = None
    sha256: str | None = None
    size: int | None = None
    remote_path: str | None = None
    result_path: str | None = None
    local_path: str | None = None
    report_path: str | None = None
    archive_path: str | None = None
    verified_by: str | None = None  # how the upload was checked (VERIFIED_BY key)
    note: str | None = None  # a failed send: why, and what it left on the server
    deidentified: str | None = None  # sent as a de-identified copy (mapping in the vault)
    patient: dict[str, Any] | None = None  # the original patient, from the vault's mapping

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaseList:
    cases: list[CaseStatus] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _names(
    sftp: asyncssh.SFTPClient, path: str, problems: list[str]
) -> list[remote.RemoteEntry]:
    try:
        listing = await remote.list_dir(sftp, path, links=False)
    except RemoteNotFoundError:
        return []
    problems.extend(f"{path}: skipped {r}" for r in listing.rejected)
    return listing.entries


def _stamp(mtime: float | None) -> str | None:
    """A server mtime as the store's UTC ISO time (None when the server gave none)."""
    if mtime is None:
        return None
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


def _from_record(record: CaseRecord, state: str, on_server: bool) -> CaseStatus:
    data = {k: getattr(record, k) for k in CaseStatus.__dataclass_fields__ if hasattr(record, k)}
    data.update(state=state, on_server=on_server)
    return CaseStatus(**data)


def patient_of(mappings: list[StudyMapping], *, full_names: bool = False) -> dict[str, Any]:
    """The original patient of a de-identified case, masked like ``case inspect`` unless
    ``full_names`` (backend/dicom/summary.py)."""
    from backend.dicom.summary import mask_id, mask_name

    first = mappings[0]
    name, pid = first.original_patient_name, first.original_patient_id
    return {
        "name": name if full_names else mask_name(name),
        "id": pid if full_names else mask_id(pid),
        "study_uid": first.original_study_uid if full_names else None,
        "pseudo_patient_id": first.pseudo_patient_id,
        "pseudo_study_uid": first.pseudo_study_uid,
        "masked": not full_names,
    }


async def case_list(
    site: Site, sftp: asyncssh.SFTPClient, store: CaseStore | None = None,
    *, mappings: MappingStore | None = None, full_names: bool = False,
) -> CaseList:
    """All cases of ``site`` with their state, plus display-safe problems seen on the way.

    ``mappings``: the vault's de-identification mappings; a case sent de-identified gets its
    original patient (masked unless ``full_names``), linked by its case id."""
    store = store or CaseStore()
    folders = await case_folders(site, sftp)
    out = CaseList()
    records = {r.case_id: r for r in store.list(site.name)}
    results: dict[str, remote.RemoteEntry] = {}
    result_area = folders.output if folders.layout == presets.STUDY_IO else folders.inbox
    for entry in await _names(sftp, result_area, out.problems):
        case_id = case_id_of(folders, entry)
        if case_id is not None and is_safe_name(case_id):
            results[case_id] = entry
    pending: set[str] = set()
    if folders.layout == presets.STUDY_IO:
        pending = {e.name for e in await _names(sftp, folders.input, out.problems)
                   if e.kind == "dir"}
    else:
        for e in await _names(sftp, folders.outbox, out.problems):
            if site.temp_suffix and e.name.endswith(site.temp_suffix):
                continue  # an upload under way (or interrupted): its case is "sending"
            pending.add(e.name[:-4] if e.name.endswith(".zip") else e.name)
    for case_id in sorted(set(records) | set(results) | pending):
        record = records.get(case_id) or CaseRecord(site=site.name, case_id=case_id, state="")
        if record.state in (DOWNLOADED, ARCHIVED, SENDING) or (
            record.state == SEND_FAILED and case_id not in results
        ):
            state = record.state
        elif case_id in results:
            state = READY
        elif folders.layout == presets.INBOX_OUTBOX and case_id in pending:
            state = SENT
        else:
            state = PROCESSING
        status = _from_record(record, state, case_id in results)
        if state == READY and status.ready_at is None:
            # not fetched yet: the server's time of the result folder stands in until the
            # fetch records when it was seen stable (docs/cases.md)
            status.ready_at = _stamp(results[case_id].mtime)
            status.result_path = status.result_path or posixpath.join(
                result_area, results[case_id].name)
        if mappings is not None:
            linked = mappings.for_case(site.name, case_id)
            if linked:
                status.patient = patient_of(linked, full_names=full_names)
        out.cases.append(status)
    return out


async def list_cases(
    site: Site, sftp: asyncssh.SFTPClient, store: CaseStore | None = None
) -> list[CaseStatus]:
    """The cases of ``site`` (see :func:`case_list` for the problems found on the way)."""
    return (await case_list(site, sftp, store)).cases
