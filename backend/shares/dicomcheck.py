"""Checking DICOM before it is shared: the share policy's or the site's de-identification rule.

``ferry share create`` calls these before anything reaches the share service. A local file is a
single DICOM file or a zip (read on disk, headers only); a ``SITE:PATH`` file is read over SFTP
(a DICOM file: its first KiB; a zip: the whole file in memory, never on disk). Files that hold
no DICOM are not checked (a PDF report is shared as before). The rule applies when the share
policy says ``require_deidentified = true`` (backend/shares/policy.py) or, for ``SITE:PATH``,
when that site has ``require_deidentified``; then an identifying file is refused by
:func:`backend.dicom.policy.check_identifiable` unless the caller overrides with a reason
(audit event ``share.identifiable_override``, values never written) or de-identifies a local
study first (:func:`deidentified_copy`: one de-identified zip in the private outgoing folder,
removed once shared, the mapping kept in the vault).
"""

from __future__ import annotations

import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend import remote
from backend.audit import AuditLog
from backend.cases import packer
from backend.cases.sendjob import outgoing_dir
from backend.dicom import policy, reader
from backend.dicom.deidentify import StudyMapping, deidentify_to_zip
from backend.errors import UsageError

OVERRIDE_EVENT = "share.identifiable_override"


def local_headers(path: Path) -> reader.HeaderSet | None:
    """The headers of a local DICOM file, zip or folder; None when it holds no DICOM."""
    headers = reader.read_local(path)
    return headers if headers.dicom else None


async def remote_headers(sftp: asyncssh.SFTPClient, full: str, size: int,
                         label: str) -> reader.HeaderSet | None:
    """The headers of one remote file (a zip is read whole, in memory); None without DICOM."""
    async with sftp.open(full, "rb") as fh:
        magic = await remote.read_bytes(fh, 4)
    if magic == b"PK\x03\x04":
        headers = await reader.read_remote_zip(sftp, full, size, label=label)
    else:
        headers = await reader.read_remote(sftp, full, label=label)
    return headers if headers.dicom else None


def audit_override(override: policy.Override, *, source: str, name: str, who: str,
                   audit: AuditLog | None = None) -> None:
    (audit or AuditLog()).append(
        OVERRIDE_EVENT, source=source, name=name, rule=who, reason=override.reason,
        findings=override.findings, files_checked=override.files_checked,
        unchecked=override.unchecked,
    )


@dataclass
class DeidCopy:
    path: Path  # the de-identified zip (remove it once shared)
    mappings: list[StudyMapping] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def deidentified_copy(source: Path, headers: reader.HeaderSet,
                      options: policy.ContentOptions) -> DeidCopy:
    """A de-identified zip of the local folder or zip ``source`` (blocking)."""
    if not (source.is_dir() or zipfile.is_zipfile(source)):
        raise UsageError(f"{source}: --deidentify shares a study folder or a .zip",
                         hint="put the file in a folder and share the folder")
    policy.check_burned_in(headers, options)
    dest = outgoing_dir() / f"share-{uuid.uuid4()}.zip"
    out = DeidCopy(dest)

    def fill(zf: zipfile.ZipFile) -> list[str]:
        result = deidentify_to_zip(source, zf, headers=headers,
                                   allow_burned_in=options.allow_burned_in)
        out.mappings, out.left_out = result.mappings, result.left_out
        return result.members

    packer.pack_with(dest, fill)
    return out
