"""Sending a study: pack it into one uniquely named zip and upload it where the provider looks.

``study-io``: ``<input>/<id>/input/<id>.zip``; ``inbox-outbox``: ``<outbox>/<id>.zip``. The id
is a fresh UUID unless one is given. The upload goes through the transfer engine, so the zip
appears under its final name only once it is complete and verified (temp name, then rename).
A folder is packed into ``$FERRY_HOME/state/outgoing/<id>.zip`` first (removed after a
verified upload); an existing ``.zip`` is checked and sent as it is. The case is recorded in the
case store (source, id, time sent, SHA-256, size) and in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend import remote
from backend.audit import AuditLog
from backend.cases import packer, presets, transport
from backend.cases.folders import CaseFolders, case_folders, ensure_dirs
from backend.cases.store import SENT, CaseStore, now
from backend.checksum import local_sha256
from backend.errors import ConfigError, FerryError, IntegrityError, UsageError
from backend.fsutil import ensure_private_dir
from backend.sites.model import Site

_STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


def outgoing_dir() -> Path:
    from backend.paths import state_dir

    return ensure_private_dir(state_dir() / "outgoing")


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
    audit: AuditLog | None = None,
    pack_progress: Callable[[int, int], None] | None = None,
    zip64_threshold: int = packer.ZIP64_LIMIT,
) -> SentStudy:
    """Pack (if a folder) and upload ``source`` as a new study of ``site``; returns the record."""
    folders = await case_folders(site, sftp)
    study_id = check_study_id(study_id or new_study_id())
    store = store or CaseStore()
    if store.get(site.name, study_id) is not None:
        raise ConfigError(f"study {study_id} was already sent to {site.name}; use a new id")
    folder, name = upload_target(folders, study_id)
    final = posixpath.join(folder, name)
    claim = posixpath.join(folders.input, study_id) if folders.layout == presets.STUDY_IO else final
    if await _exists(sftp, claim):
        raise ConfigError(f"{claim} already exists on {site.name}; study ids must be unique")

    source = Path(source)
    if not os.path.lexists(source):
        raise UsageError(f"no such file or folder: {source}")
    packed: Path | None = None
    skipped: list[str] = []
    if source.is_dir() and not source.is_symlink():
        result = await asyncio.to_thread(
            packer.pack_folder,
            source,
            outgoing_dir() / name,
            zip64_threshold=zip64_threshold,
            progress=pack_progress,
        )
        packed, local_zip, sha256, size = result.path, result.path, result.sha256, result.size
        files, skipped = result.files, result.skipped
    elif source.suffix.lower() == ".zip":
        files = await asyncio.to_thread(packer.check_zip, source)
        local_zip = source
        sha256 = await local_sha256(str(source))
        size = source.stat().st_size
    else:
        raise UsageError(f"{source}: give a study folder or a .zip file")

    try:
        await ensure_dirs(sftp, folder, folders.root)
        await transport.upload_file(engine, site.name, local_zip, folder, name)
        entry = await remote.stat_path(sftp, final)
        if entry.kind != "file" or entry.size != size:
            raise IntegrityError(
                f"{final} on {site.name} has {entry.size} bytes, expected {size}; send it again"
            )
    except FerryError:
        if packed is not None:
            with contextlib.suppress(OSError):
                packed.unlink()
        raise
    if packed is not None:
        with contextlib.suppress(OSError):
            packed.unlink()
    when = now()
    store.upsert(
        site.name,
        study_id,
        state=SENT,
        layout=folders.layout,
        source=str(source.resolve()),
        remote_path=final,
        sha256=sha256,
        size=size,
        sent_at=when,
    )
    (audit or AuditLog()).append(
        "case.sent",
        site=site.name,
        study=study_id,
        source=str(source.resolve()),
        remote=final,
        size=size,
        sha256=sha256,
    )
    return SentStudy(
        site=site.name,
        study_id=study_id,
        remote_path=final,
        sha256=sha256,
        size=size,
        source=str(source.resolve()),
        sent_at=when,
        files=files,
        skipped=skipped,
    )
