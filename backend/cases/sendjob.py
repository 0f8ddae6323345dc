"""The case-send job: its tag, and completing the case when its upload job ends, anywhere.

``ferry case send`` (and the TUI) submit the study's upload as a transfer job tagged
``case-send:<study id>`` (backend/transfers/finishers.py). When that job ends — in the process
that submitted it, in the TUI, or in ``ferry queue resume`` / ``ferry queue cancel`` run after
a crash — :func:`finish` runs in that process and completes the case row (backend/cases/store.py):

* ``done``: state ``sent`` with the SHA-256 of the bytes sent, how the server's copy was checked
  (``verified_by``, a backend/transfers/model.py VERIFIED_BY key), the remote path and the time
  sent; the ``case.sent`` audit event; the plaintext zip Ferry packed into
  ``$FERRY_HOME/state/outgoing/`` is removed.
* ``failed`` / ``cancelled``: what the send created on the server is removed — the partial
  upload (temp file; in direct mode the partial file under the final name) and the folders the
  send made, never anything else and never a folder that is not empty — and the packed zip;
  state ``send failed`` with a note naming the reason and anything that could not be removed;
  the ``case.send_failed`` audit event.

Idempotent: a case already ``sent`` (or later) is left alone; a failed one is cleaned again.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from pathlib import Path

import asyncssh

from backend.cases.store import SEND_FAILED, SENDING, SENT, CaseRecord, CaseStore, now
from backend.errors import FerryError
from backend.fsutil import ensure_private_dir
from backend.names import display_name
from backend.transfers import finishers
from backend.transfers.journal import FileRow, JobRow, Journal
from backend.transfers.model import verified_label

log = logging.getLogger("ferry.cases")

KIND = "case-send"


def tag_for(study_id: str) -> str:
    return f"{KIND}:{study_id}"


def study_of(tag: str | None) -> str:
    return (tag or "").split(":", 1)[1] if ":" in (tag or "") else ""


def outgoing_dir() -> Path:
    """Where folders are packed before upload (plaintext: removed once the send ends)."""
    from backend.paths import state_dir

    return ensure_private_dir(state_dir() / "outgoing")


def latest_job(journal: Journal, site: str, study_id: str) -> JobRow | None:
    """The newest transfer job sending this study to this site, if any."""
    tag = tag_for(study_id)
    jobs = [j for j in journal.job_rows() if j.spec.tag == tag and j.spec.site == site]
    return max(jobs, key=lambda j: j.id) if jobs else None


def method_of(verify: str | None) -> str:
    """A file row's verification as a VERIFIED_BY key ("sha256" was the server's hash)."""
    return "sha256-server" if verify == "sha256" else (verify or "none")


def drop_packed(path: str | Path) -> None:
    """Remove a zip Ferry packed (only ever one in outgoing/; a user's own .zip stays)."""
    p = Path(path)
    with contextlib.suppress(OSError):
        if p.parent.resolve() == outgoing_dir().resolve() and p.suffix == ".zip":
            p.unlink()


async def remove_dirs(sftp: asyncssh.SFTPClient, dirs: list[str]) -> list[str]:
    """``rmdir`` the folders a send created, deepest first; returns what could not be removed
    (a folder that is not empty stays: nothing is ever removed recursively)."""
    left = []
    for path in sorted(set(dirs), key=lambda d: (d.count("/"), d), reverse=True):
        try:
            await sftp.lstat(path)  # (a read-only server refuses rmdir even of nothing)
            await sftp.rmdir(path)
        except asyncssh.SFTPNoSuchFile:
            continue
        except asyncssh.Error as exc:
            left.append(f"{path} ({display_name(exc.reason or str(exc))})")
    return left


async def finish(ended: finishers.Finished) -> str | None:
    """Complete the case of a case-send job that has just ended (see the module docstring)."""
    site, study = ended.spec.site, study_of(ended.spec.tag)
    if not study:
        return None
    store = CaseStore()
    record = store.get(site, study)
    if record is not None and record.state not in (SENDING, SEND_FAILED):
        return None  # already completed, here or by another process
    if record is not None and record.job_id not in (None, ended.job_id):
        return None  # an older attempt's job: the case belongs to a newer one
    rows = ended.engine.journal.files(ended.job_id)
    row = rows[0] if rows else None
    if ended.state == "done" and row is not None:
        if row.state == "done":
            return _sent(ended, store, record, study, row, method_of(row.verify))
        if row.state == "skipped":  # the final name existed when the job (re)started
            size = await _remote_size(ended, row.dst)
            if size is not None and record is not None and size == record.size:
                # killed between the rename and the journal write: it is ours, by size only
                return _sent(ended, store, record, study, row, "size")
            return await _undo(ended, store, record, study,
                               f"{row.dst} already exists on the server and is not this study")
    return await _undo(ended, store, record, study)


async def _remote_size(ended: finishers.Finished, path: str) -> int | None:
    try:
        async with ended.engine.borrow_sftp(ended.spec.site) as sftp:
            attrs = await sftp.stat(path)
    except (FerryError, asyncssh.Error, OSError):
        return None
    return int(attrs.size) if attrs.size is not None else None


def _sent(ended: finishers.Finished, store: CaseStore, record: CaseRecord | None, study: str,
          row: FileRow, method: str) -> str:
    sha256 = row.sha256 or (record.sha256 if record else None)
    store.upsert(
        ended.spec.site, study, state=SENT, remote_path=row.dst, sha256=sha256, size=row.size,
        sent_at=now(), verified_by=method, job_id=ended.job_id, note=None,
    )
    drop_packed(row.src)
    ended.engine.audit.append(
        "case.sent", site=ended.spec.site, study=study,
        source=record.source if record else None, remote=row.dst, size=row.size,
        sha256=sha256, verified_by=method, job=ended.job_id,
    )
    return (f"study {study} sent to {ended.spec.site}: {row.dst} "
            f"(verified: {verified_label(method)})")


async def _undo(ended: finishers.Finished, store: CaseStore, record: CaseRecord | None,
                study: str, reason: str | None = None) -> str | None:
    engine, job_id = ended.engine, ended.job_id
    if ended.state != "cancelled":  # a cancel already removed the temp files
        with contextlib.suppress(FerryError):
            await engine.discard_partial(job_id)
    rows = engine.journal.files(job_id)
    left = [f"{r.temp} (partial upload)" for r in rows
            if r.state not in ("done", "skipped") and r.temp and r.temp != r.dst]
    partial_finals = [r.dst for r in rows  # direct mode: the partial file has the final name
                      if r.state not in ("done", "skipped") and r.temp and r.temp == r.dst]
    dirs = record.dirs() if record is not None else []
    if partial_finals or dirs:
        try:
            async with engine.borrow_sftp(ended.spec.site) as sftp:
                for path in partial_finals:
                    try:
                        await sftp.remove(path)
                    except asyncssh.SFTPNoSuchFile:
                        pass
                    except asyncssh.Error as exc:
                        left.append(f"{path} (partial upload: {display_name(exc.reason)})")
                left.extend(await remove_dirs(sftp, dirs))
        except FerryError as exc:
            left.extend(f"{p} (partial upload)" for p in partial_finals)
            left.extend(f"{d} (could not connect: {exc.message})" for d in dirs)
    for r in rows:
        drop_packed(r.src)
    errors = [r.error for r in rows if r.state == "failed" and r.error]
    why = reason or (
        "cancelled" if ended.state == "cancelled"
        else display_name(errors[0] if errors else ended.error or "the upload failed")
    )
    note = why + (f"; left on the server: {', '.join(left)}" if left
                  else "; nothing it created is left on the server")
    if record is not None and record.state == SEND_FAILED and record.note == note:
        return None  # cleaned up already (e.g. by the process that cancelled it)
    store.upsert(ended.spec.site, study, state=SEND_FAILED, job_id=job_id, note=note)
    engine.audit.append(
        "case.send_failed", site=ended.spec.site, study=study, job=job_id, reason=why,
        left=left,
    )
    if left:
        log.warning("study %s: left on %s: %s", study, ended.spec.site, ", ".join(left))
    return f"study {study} not sent to {ended.spec.site}: {note}"


def remote_parents(root: str, folder: str) -> list[str]:
    """The folders from below ``root`` down to ``folder`` (what ensure_dirs may create)."""
    rel = posixpath.relpath(folder, root)
    if rel in (".", "") or rel.startswith(".."):
        return []
    out, current = [], root
    for part in rel.split("/"):
        current = posixpath.join(current, part)
        out.append(current)
    return out


finishers.register(KIND, finish)
