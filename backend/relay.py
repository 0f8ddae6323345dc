"""Site-to-site copies and moves through the transfer engine (the "relay").

Ferry's engine moves bytes only between this machine and one site. A copy from site A to site
B (or from one folder of a site to another) is therefore two ordinary engine jobs:

1. ``get`` the sources from A into a private staging folder,
   ``paths.state_dir() / "relay" / "<pid>-<random>"`` (0700, only this relay writes there);
2. once that job is ``done`` with no failed file, ``put`` what landed in staging into B's
   destination folder;
3. remove the staging folder — always: after success, failure, a cancelled job or a cancelled
   relay. Only that folder is removed (located with :func:`backend.fsutil.safe_join` under the
   relay root; ``shutil.rmtree`` never follows symlinks).

Both legs keep every engine guarantee (temporary names, verification, resume, the audit log)
and both show in the queue as normal jobs. Progress is reported through a callback with
:class:`RelayProgress` (phase ``download``/``upload`` and the engine job id, then the outcome).

A move (:func:`relay_move`) deletes the sources on A with :func:`backend.remote.delete` only
after both legs are ``done`` with no failed file; otherwise the originals stay.

Staging folders left by a process that died mid-relay are swept at the start of the next
relay (their owner pid is no longer running).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import posixpath
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncssh

from backend import paths, remote
from backend.errors import FerryError, UsageError
from backend.fsutil import ensure_private_dir, pid_alive, safe_join
from backend.names import display_name
from backend.transfers.model import ConflictPolicy, JobSpec, JobStatus, VerifyMode

log = logging.getLogger("ferry.relay")

Phase = Literal["download", "upload", "delete", "done", "failed", "cancelled"]
RelayState = Literal["done", "failed", "cancelled"]
PART_SUFFIX = ".ferrypart"


@dataclass(frozen=True)
class RelaySpec:
    """Copy ``sources`` (paths on ``source_site``) into the folder ``destination`` on
    ``dest_site`` (created if missing; the items land inside it, keeping their names)."""

    source_site: str
    sources: list[str]
    dest_site: str
    destination: str
    recursive: bool = False
    on_conflict: ConflictPolicy = "resume"
    verify: VerifyMode = "auto"

    def validate(self) -> RelaySpec:
        if not self.source_site or not self.dest_site:
            raise UsageError("a site-to-site copy needs a source site and a destination site")
        if not self.sources or any(not s for s in self.sources):
            raise UsageError("nothing to copy: give at least one source path")
        if not self.destination:
            raise UsageError("a site-to-site copy needs a destination folder")
        names = [posixpath.basename(s.rstrip("/")) for s in self.sources]
        if len(set(names)) != len(names):
            raise UsageError("two sources have the same name: copy them one at a time")
        if self.source_site == self.dest_site:
            dest = posixpath.normpath(self.destination)
            for source in self.sources:
                src = posixpath.normpath(source)
                if posixpath.dirname(src) == dest:
                    raise UsageError(
                        f"{display_name(source)} is already in {display_name(self.destination)}:"
                        " choose another folder"
                    )
                if dest == src or dest.startswith(src.rstrip("/") + "/"):
                    raise UsageError(f"cannot copy {display_name(source)} into itself")
        # The engine checks the rest (policies, verify modes) when the legs are submitted.
        JobSpec("get", self.source_site, list(self.sources), "/", self.recursive,
                self.on_conflict, self.verify).validate()
        return self

    @property
    def label(self) -> str:
        first = self.sources[0].rstrip("/").rsplit("/", 1)[-1] or self.sources[0]
        more = f" +{len(self.sources) - 1}" if len(self.sources) > 1 else ""
        return display_name(f"{first}{more} {self.source_site} → {self.dest_site}")


@dataclass(frozen=True)
class RelayProgress:
    """One step of a relay: ``download``/``upload`` started as engine job ``job_id``;
    ``delete`` (a move removing its originals); then ``done``, ``failed`` or ``cancelled``."""

    phase: Phase
    job_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class RelayResult:
    state: RelayState
    download_job: int | None = None
    upload_job: int | None = None
    files_done: int = 0
    files_failed: int = 0
    error: str | None = None
    sources_deleted: bool = False  # moves only

    @property
    def ok(self) -> bool:
        return self.state == "done" and self.files_failed == 0


ProgressCallback = Callable[[RelayProgress], Awaitable[None] | None]


def relay_root() -> Path:
    """Where staging folders live (0700)."""
    return ensure_private_dir(paths.state_dir() / "relay")


def _remove_staging(staging: Path) -> None:
    """Remove one staging folder (never follows symlinks; nothing outside it is touched)."""
    if staging.is_symlink():
        staging.unlink()
    elif staging.exists():
        shutil.rmtree(staging)


def sweep_stale_staging() -> int:
    """Remove staging folders whose owning process is gone. Returns how many were removed."""
    root = relay_root()
    removed = 0
    for entry in os.scandir(root):
        pid_text = entry.name.split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError, FerryError):
            _remove_staging(safe_join(root, entry.name))
            removed += 1
    return removed


def new_staging() -> Path:
    """A fresh, empty, private staging folder for one relay."""
    root = relay_root()
    staging = safe_join(root, f"{os.getpid()}-{secrets.token_hex(8)}")
    os.mkdir(staging, 0o700)
    return staging


async def _report(on_progress: ProgressCallback | None, progress: RelayProgress) -> None:
    if on_progress is None:
        return
    try:
        result = on_progress(progress)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a caller's display bug must not break the copy
        log.exception("relay progress callback failed")


def _leg_error(engine: Any, status: JobStatus, leg: str) -> str:
    error = engine.job_error(status.id)
    message = (error.message if error is not None else None) or status.error or status.state
    failed = [f for f in engine.files(status.id) if f.state == "failed" and f.error]
    if failed and failed[0].error not in message:
        message = f"{message}: {failed[0].error}"
    return display_name(f"{leg} failed: {message}")


async def relay_copy(
    engine: Any, spec: RelaySpec, *, on_progress: ProgressCallback | None = None
) -> RelayResult:
    """Copy ``spec.sources`` from one site into ``spec.destination`` on another (or the same)
    site through ``engine`` (a started :class:`~backend.transfers.TransferEngine`).

    Never raises for a failed or cancelled leg: the result says what happened. Raises
    :class:`UsageError` for a bad spec before anything is transferred. Cancelling the task
    cancels the running engine job. The staging folder is removed in every case.
    """
    spec.validate()
    with contextlib.suppress(OSError):
        sweep_stale_staging()
    staging = await asyncio.to_thread(new_staging)
    current: int | None = None
    down: int | None = None
    up: int | None = None
    try:
        current = down = await engine.submit(JobSpec(
            "get", spec.source_site, list(spec.sources), str(staging) + "/",
            recursive=spec.recursive, on_conflict="overwrite", verify=spec.verify,
        ))
        await _report(on_progress, RelayProgress("download", down))
        status = await engine.wait(down)
        current = None
        if status.state != "done" or status.files_failed:
            return await _finish(on_progress, RelayResult(
                "cancelled" if status.state == "cancelled" else "failed", down,
                files_failed=status.files_failed, error=_leg_error(engine, status, "download"),
            ))
        staged = sorted(
            str(safe_join(staging, name)) for name in os.listdir(staging)
            if not name.endswith(PART_SUFFIX)
        )
        if not staged:
            return await _finish(on_progress, RelayResult(
                "done", down, files_done=0, error="nothing to copy (only links or special files)"
            ))
        destination = spec.destination if spec.destination.endswith("/") else spec.destination + "/"
        current = up = await engine.submit(JobSpec(
            "put", spec.dest_site, staged, destination, recursive=spec.recursive,
            on_conflict=spec.on_conflict, verify=spec.verify,
        ))
        await _report(on_progress, RelayProgress("upload", up))
        status = await engine.wait(up)
        current = None
        if status.state != "done" or status.files_failed:
            return await _finish(on_progress, RelayResult(
                "cancelled" if status.state == "cancelled" else "failed", down, up,
                files_done=status.files_done, files_failed=status.files_failed,
                error=_leg_error(engine, status, "upload"),
            ))
        return await _finish(on_progress, RelayResult("done", down, up,
                                                      files_done=status.files_done))
    except asyncio.CancelledError:
        if current is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(engine.cancel(current))
        raise
    finally:
        try:
            await asyncio.shield(asyncio.to_thread(_remove_staging, staging))
        except asyncio.CancelledError:
            _remove_staging(staging)
            raise
        except OSError as exc:
            log.warning("could not remove relay staging %s: %s", staging, exc)


async def _finish(on_progress: ProgressCallback | None, result: RelayResult) -> RelayResult:
    await _report(on_progress, RelayProgress(result.state, error=result.error))
    return result


async def relay_move(
    engine: Any,
    spec: RelaySpec,
    source_sftp: asyncssh.SFTPClient | Callable[[], Awaitable[asyncssh.SFTPClient]],
    *,
    on_progress: ProgressCallback | None = None,
) -> RelayResult:
    """:func:`relay_copy`, then delete the sources on the source site (through
    ``source_sftp``: a client connected to it, or an async factory called only when the
    delete is due, so a long copy holds no idle session) — only when both legs are done with
    no failed file. Source paths must be absolute so the delete removes exactly what was
    copied."""
    if any(not s.startswith("/") for s in spec.sources):
        raise UsageError("a move between sites needs absolute source paths")

    async def legs_only(progress: RelayProgress) -> None:
        if progress.phase in ("download", "upload"):
            await _report(on_progress, progress)

    result = await relay_copy(engine, spec, on_progress=legs_only)
    if not result.ok or result.upload_job is None:
        return await _finish(on_progress, result)
    await _report(on_progress, RelayProgress("delete"))
    errors: list[str] = []
    try:
        sftp = source_sftp if isinstance(source_sftp, asyncssh.SFTPClient) else await source_sftp()
    except FerryError as exc:
        errors.append(exc.message)
    else:
        for source in spec.sources:
            try:
                await remote.delete(sftp, source)
            except FerryError as exc:
                errors.append(exc.message)
    if errors:
        result = RelayResult(
            "done", result.download_job, result.upload_job, result.files_done,
            error=display_name(f"copied, but the original stays: {errors[0]}"),
        )
    else:
        result = RelayResult("done", result.download_job, result.upload_job, result.files_done,
                             sources_deleted=True)
    return await _finish(on_progress, result)
