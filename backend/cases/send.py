"""Sending a study: pack it into one uniquely named zip and upload it where the provider looks.

``study-io``: ``<input>/<id>/input/<id>.zip``; ``inbox-outbox``: ``<outbox>/<id>.zip``. The id
is a fresh UUID unless one is given. The upload goes through the transfer engine, so the zip
appears under its final name only once it is complete and verified (temp name, then rename).
A folder is packed into ``$FERRY_HOME/state/outgoing/<id>.zip`` first; an existing ``.zip`` is
checked and sent as it is.

A send is one journaled operation (backend/cases/sendjob.py): the case row exists as
``sending`` before anything is uploaded, naming the folders the send creates; the upload is a
transfer job tagged with the study id, so whichever process finishes it (this one, the TUI,
``ferry queue resume``) records the case as ``sent`` (SHA-256, verification method, remote
path, time, ``case.sent`` audit event) and removes the packed zip, and a failed or cancelled
send removes what it created on the server. Sending the same ``study_id`` again resumes an
interrupted send; a study already sent is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import posixpath
import re
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend import remote
from backend.audit import AuditLog
from backend.cases import packer, presets, sendjob, transport
from backend.cases.folders import CaseFolders, case_folders, ensure_dirs
from backend.cases.sendjob import outgoing_dir
from backend.cases.store import SEND_FAILED, SENDING, SENT, CaseRecord, CaseStore
from backend.checksum import local_sha256
from backend.errors import ConfigError, FerryError, TransferError, UsageError
from backend.sites.model import Site
from backend.transfers.finishers import Finished

_STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SETTLE_WAIT = 10.0  # seconds to wait for another process to finish a case it completed
Packer = Callable[[Path, Path], packer.PackResult]  # (source, target zip) -> what it wrote

__all__ = ["SentStudy", "check_study_id", "direct_mode_warning", "new_study_id",
           "outgoing_dir", "send_study", "upload_target"]


@dataclass
class SentStudy:
    site: str
    study_id: str
    remote_path: str
    sha256: str
    size: int
    source: str
    sent_at: str
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # local symlinks/special files not packed
    verified_by: str = "none"  # how the server's copy was checked: a VERIFIED_BY key
    resumed: bool = False  # an interrupted send of this study was continued


def new_study_id() -> str:
    return str(uuid.uuid4())


def check_study_id(study_id: str) -> str:
    if not _STUDY_ID.match(study_id) or study_id.endswith(".zip"):
        raise UsageError(
            f"invalid study id {study_id!r}: use letters, digits, '.', '_' or '-' (max 128)"
        )
    return study_id


def upload_target(folders: CaseFolders, study_id: str) -> tuple[str, str]:
    """(remote folder, final zip name) for a study of this layout."""
    name = f"{study_id}.zip"
    if folders.layout == presets.STUDY_IO:
        return posixpath.join(folders.input, study_id, "input"), name
    return folders.outbox, name


def direct_mode_warning(site: Site) -> str:
    return (f"site {site.name} uploads directly under the final name (upload_mode = direct): "
            "the provider may read a partial study while it uploads")


async def _exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    with remote.sftp_errors(path):
        return bool(await sftp.exists(path))


async def send_study(
    site: Site,
    sftp: asyncssh.SFTPClient,
    engine: transport.Engine,
    source: Path,
    *,
    study_id: str | None = None,
    store: CaseStore | None = None,
    audit: AuditLog | None = None,  # unused: case.sent is written by the job's finisher
    pack_progress: Callable[[int, int], None] | None = None,
    zip64_threshold: int = packer.ZIP64_LIMIT,
    allow_partial_reads: bool = False,
    pack: Packer | None = None,
) -> SentStudy:
    """Pack (if a folder) and upload ``source`` as study ``study_id`` of ``site`` (a new one,
    or continue its interrupted send); returns the record once the case is ``sent``.

    ``allow_partial_reads``: needed on a site with ``upload_mode = direct``, where the zip is
    written under its final name and the provider may pick up a partial study.

    ``pack(source, target)``: writes the zip to upload at ``target`` (in the outgoing folder)
    instead of packing every file of the folder, or instead of sending a ``.zip`` as it is:
    one study of a split folder, or a de-identified copy (backend/cases/dicomsend.py). It runs
    only for a fresh send: a resumed send continues the zip it made."""
    del audit
    folders = await case_folders(site, sftp)
    if site.upload_mode == "direct" and not allow_partial_reads:
        raise UsageError(
            direct_mode_warning(site) + "; refused",
            hint=f"ferry sites edit {site.name} --upload-mode temp-rename, or accept the risk "
                 "with --allow-partial-reads",
        )
    study_id = check_study_id(study_id or new_study_id())
    store = store or CaseStore()
    source = Path(source)
    if not os.path.lexists(source):
        raise UsageError(f"no such file or folder: {source}")
    record = store.get(site.name, study_id)
    if record is not None and record.state not in (SENDING, SEND_FAILED):
        when = f" at {record.sent_at}" if record.sent_at else ""
        where = f" ({record.remote_path})" if record.remote_path else ""
        raise ConfigError(
            f"study {study_id} was already sent to {site.name}{when}{where} "
            f"and is {record.state}; nothing was uploaded",
            hint="use a new --study-id, or none for a fresh one",
        )
    if record is not None and record.state == SENDING:
        resumed = await _resume(site, engine, store, record, source)
        if resumed is not None:
            return resumed
        record = store.get(site.name, study_id)
    return await _send_fresh(site, sftp, engine, store, folders, record, study_id, source,
                             pack_progress, zip64_threshold, pack)


async def _resume(site: Site, engine: transport.Engine, store: CaseStore, record: CaseRecord,
                  source: Path) -> SentStudy | None:
    """Continue the interrupted send of ``record``; None when it must start afresh."""
    study_id = record.case_id
    if record.source and str(source.resolve()) != record.source:
        raise UsageError(
            f"study {study_id} is being sent from {record.source}, not {source}",
            hint="give that path again to resume, or use a new --study-id",
        )
    job = sendjob.latest_job(engine.journal, site.name, study_id)
    if job is None:
        return None  # interrupted before its upload was queued
    if job.state in ("failed", "cancelled"):
        # ended but never completed (the process was killed while finishing): clean up
        await sendjob.finish(Finished(engine, job.id, job.spec, job.state, job.error))
        return None
    files = _zip_names(job.spec.sources[0])
    if job.state != "done":
        if not engine.journal.owned_by_other(job, engine.me):
            await engine.resume(job.id)
        await engine.wait(job.id)
        await _settled(store, site.name, study_id)
    job = engine.journal.job(job.id)
    record = store.get(site.name, study_id) or record
    if record.state == SENDING and job.state in ("done", "failed", "cancelled"):
        await sendjob.finish(Finished(engine, job.id, job.spec, job.state, job.error))
    return _result(engine, store, site, study_id, job.id, files, [], resumed=True)


async def _settled(store: CaseStore, site: str, study_id: str) -> None:
    """Give another process that ran the job a moment to complete the case."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_WAIT
    while loop.time() < deadline:
        record = store.get(site, study_id)
        if record is None or record.state != SENDING:
            return
        await asyncio.sleep(0.2)


def _zip_names(path: str) -> list[str]:
    with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(path) as zf:
        return zf.namelist()
    return []


async def _missing_dirs(sftp: asyncssh.SFTPClient, root: str, folder: str) -> list[str]:
    missing: list[str] = []
    for path in sendjob.remote_parents(root, folder):
        if missing or not await _exists(sftp, path):
            missing.append(path)
    return missing


async def _send_fresh(
    site: Site, sftp: asyncssh.SFTPClient, engine: transport.Engine, store: CaseStore,
    folders: CaseFolders, record: CaseRecord | None, study_id: str, source: Path,
    pack_progress: Callable[[int, int], None] | None, zip64_threshold: int,
    pack: Packer | None = None,
) -> SentStudy:
    folder, name = upload_target(folders, study_id)
    final = posixpath.join(folder, name)
    claim = posixpath.join(folders.input, study_id) if folders.layout == presets.STUDY_IO else final
    ours = record.dirs() if record is not None else []  # left by an earlier failed attempt
    if await _exists(sftp, final) or (claim not in ours and await _exists(sftp, claim)):
        raise ConfigError(f"{claim} already exists on {site.name}; study ids must be unique")
    if not (source.is_dir() and not source.is_symlink()) and source.suffix.lower() != ".zip":
        raise UsageError(f"{source}: give a study folder or a .zip file")
    store.upsert(
        site.name, study_id, state=SENDING, layout=folders.layout, source=str(source.resolve()),
        remote_path=final, sha256=None, size=None, sent_at=None, verified_by=None,
        job_id=None, note=None, deidentified=None,
    )
    packed: Path | None = None
    created: list[str] = list(ours)
    try:
        skipped: list[str] = []
        if pack is not None or (source.is_dir() and not source.is_symlink()):
            target = outgoing_dir() / name
            with contextlib.suppress(FileNotFoundError):
                target.unlink()  # our own leftover from a send interrupted before its upload
            if pack is not None:
                result = await asyncio.to_thread(pack, source, target)
            else:
                result = await asyncio.to_thread(
                    packer.pack_folder, source, target,
                    zip64_threshold=zip64_threshold, progress=pack_progress,
                )
            packed, local_zip, sha256, size = result.path, result.path, result.sha256, result.size
            files, skipped = result.files, result.skipped
        else:
            files = await asyncio.to_thread(packer.check_zip, source)
            local_zip = source
            sha256 = await local_sha256(str(source))
            size = source.stat().st_size
        missing = await _missing_dirs(sftp, folders.root, folder)
        created = sorted(set(created) | set(missing))
        store.upsert(site.name, study_id, sha256=sha256, size=size,
                     created_dirs=json.dumps(created))
        await ensure_dirs(sftp, folder, folders.root)
        job_id = await engine.submit(
            transport.upload_spec(site.name, local_zip, final, sendjob.tag_for(study_id)))
    except FerryError:
        await _abandon(sftp, store, site.name, study_id, packed, created)
        raise
    store.upsert(site.name, study_id, job_id=job_id)
    await engine.wait(job_id)
    return _result(engine, store, site, study_id, job_id, files, skipped)


async def _abandon(sftp: asyncssh.SFTPClient, store: CaseStore, site: str, study_id: str,
                   packed: Path | None, created: list[str]) -> None:
    """A send that failed before its upload was queued: undo what it did."""
    if packed is not None:
        sendjob.drop_packed(packed)
    left = await sendjob.remove_dirs(sftp, created) if created else []
    if left:
        store.upsert(site, study_id, state=SEND_FAILED,
                     note=f"not uploaded; left on the server: {', '.join(left)}")
    else:
        store.delete(site, study_id)


def _result(engine: transport.Engine, store: CaseStore, site: Site, study_id: str, job_id: int,
            files: list[str], skipped: list[str], *, resumed: bool = False) -> SentStudy:
    record = store.get(site.name, study_id)
    if record is None or record.state != SENT:
        note = record.note if record is not None and record.note else None
        why = note or transport.failure_reason(engine, job_id)
        raise TransferError(
            f"study {study_id} was not sent to {site.name} (job {job_id}): {why}",
            hint=f"send it again (--study-id {study_id} keeps the id)",
        )
    return SentStudy(
        site=site.name, study_id=study_id, remote_path=record.remote_path or "",
        sha256=record.sha256 or "", size=record.size or 0, source=record.source or "",
        sent_at=record.sent_at or "", files=files, skipped=skipped,
        verified_by=record.verified_by or "none", resumed=resumed,
    )
