"""The case workflows' only way to move bytes: jobs on the transfer engine.

Uploads and result downloads go through :class:`backend.transfers.TransferEngine` (temp name
then rename, SHA-256 verification, resume, journal, audit) — never a second copier. This
module only turns "this zip to that file" / "that result folder here" into a
:class:`~backend.transfers.model.JobSpec`, waits for downloads, and turns a failed job into a
typed error naming what to do (a study upload is followed by backend/cases/send.py).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import TransferError
from backend.names import display_name
from backend.transfers.model import JobSpec, verified_label

if TYPE_CHECKING:
    from backend.session import Session

Engine = Any  # backend.transfers.TransferEngine (imported lazily: it is the heavy part)


@contextlib.asynccontextmanager
async def engine_for(session: Session) -> AsyncIterator[Engine]:
    """A started engine wired by ``session`` (backend/session.py: its connector and the
    at-rest key provider, so a site that encrypts at rest works here as in ``ferry put``)."""
    async with session.running_engine(run_all_jobs=False) as engine:
        yield engine


def failure_reason(engine: Engine, job_id: int) -> str:
    """Why a job did not finish, in one display-safe line."""
    status = engine.job(job_id)
    errors = [f.error for f in engine.files(job_id) if f.state == "failed" and f.error]
    why = errors[0] if errors else status.error or (
        f"{status.files_failed} file(s) failed" if status.files_failed else f"job {status.state}")
    return display_name(why)


async def _run(engine: Engine, spec: JobSpec, hint: str = "run the command again to resume") -> Any:
    job_id = await engine.adopt(spec.validate())
    status = await engine.wait(job_id)
    if status.state != "done" or status.files_failed:
        raise TransferError(f"{spec.label}: {failure_reason(engine, job_id)}", hint=hint)
    return job_id


def upload_spec(site: str, local: Path, final: str, tag: str) -> JobSpec:
    """The job uploading a study's zip to ``final`` (under that name only when verified);
    ``tag`` lets whichever process finishes it complete the case (backend/cases/sendjob.py)."""
    return JobSpec(direction="put", site=site, sources=[str(local)], destination=final,
                   on_conflict="skip", verify="sha256", tag=tag).validate()


async def download_folder(
    engine: Engine, site: str, remote_folder: str, names: list[str], local: Path
) -> list[dict[str, Any]]:
    """Download ``names`` (validated files and folders directly in ``remote_folder``) into
    ``local``; returns one ``{"path", "size", "sha256", "verified_by"}`` per downloaded file
    (``sha256`` is of the bytes received; ``verified_by`` says whether the server's own hash
    matched it: backend/transfers/model.py VERIFIED_BY)."""
    spec = JobSpec(direction="get", site=site,
                   sources=[posixpath.join(remote_folder, n) for n in sorted(names)],
                   destination=str(local) + "/", recursive=True, on_conflict="resume",
                   verify="auto")  # results from an sftp-only provider still arrive, checked
    # as well as that server allows; each file records how (verified_by)
    job_id = await _run(engine, spec)
    files = engine.files(job_id)
    return [
        {"path": f.destination, "size": f.size, "sha256": f.sha256,
         "verified_by": verified_label(f.verify)}
        for f in files
        if f.state == "done"
    ]
