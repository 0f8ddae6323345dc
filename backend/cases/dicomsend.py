"""Sending a DICOM case: study isolation, the site's de-identification rule, split, de-identify.

:func:`send_case` is the one call behind ``ferry case send`` and the TUI's case send. Before
anything is packed or uploaded it reads the headers of the folder or zip
(:func:`backend.dicom.reader.read_local`) and applies :mod:`backend.dicom.policy`:

1. isolation — one StudyInstanceUID and nothing else, or refused (exit 17) with the list;
   ``split`` sends one zip per study instead (each its own study id, case record and journaled
   send job, in StudyDate order; non-DICOM files belong to no study and are left out, listed);
   ``allow_non_dicom`` lets reports travel with the images;
2. de-identification — on a site with ``require_deidentified`` an identifying study is refused
   with the attributes and their counts, unless ``deidentify`` or ``allow_identifiable`` with a
   reason (audit event ``case.identifiable_override``, written before the upload starts, with
   the counts and never a value);
3. ``deidentify`` (any site) — the de-identified copy is written straight into the outgoing zip
   by :func:`backend.dicom.deidentify.deidentify_to_zip` (one instance in memory at a time; the
   zip is the only copy on disk, removed once sent, as every zip Ferry packs), burned-in
   annotation refused unless ``allow_burned_in``, and the study's mapping (original study and
   patient -> pseudonyms) saved in the vault with the case id and site
   (:class:`backend.dicom.mapping.MappingStore`) before the upload starts, so results coming
   back under the case id are shown against the original patient (``case list``, the TUI).

Each zip is then sent by :func:`backend.cases.send.send_study` (its ``pack`` hook writes the
zip), so resume, verification, clean-up and the ``case.sent`` event are those of any send.
"""

from __future__ import annotations

import asyncio
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend.audit import AuditLog
from backend.cases import packer, transport
from backend.cases.send import Packer, SentStudy, check_study_id, new_study_id, send_study
from backend.cases.store import CaseStore
from backend.dicom import policy
from backend.dicom.deidentify import METHOD, deidentify_to_zip
from backend.dicom.mapping import MappingStore
from backend.dicom.reader import FileHeader, HeaderSet, read_local
from backend.dicom.summary import CaseSummary, summarise
from backend.errors import FerryError, UsageError, VaultError
from backend.names import display_name
from backend.sites.model import Site

OVERRIDE_EVENT = "case.identifiable_override"


@dataclass
class CaseSend:
    """What :func:`send_case` did."""

    sent: list[SentStudy] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # display-safe: files not sent, and why
    override: policy.Override | None = None  # identifiable data sent under an override
    deidentified: bool = False
    studies: list[str] = field(default_factory=list)  # masked study lines, in send order


@dataclass
class _Part:
    """One zip to send: a study's files (or the whole source) and their headers."""

    headers: HeaderSet
    label: str
    files: list[FileHeader] | None = None  # None: the whole source, as send_study packs it


def _study_of(fh: FileHeader) -> str:
    ds = fh.dataset
    return "" if ds is None else str(ds.get("StudyInstanceUID", "") or "").strip()


@dataclass
class Plan:
    """What :func:`plan` found: the zips to send, what stays behind, an override to audit."""

    summary: CaseSummary
    parts: list[_Part]
    left_out: list[str]
    override: policy.Override | None


def plan(source: Path, options: policy.ContentOptions, site: Site) -> Plan:
    """Read and check ``source`` (blocking; no connection needed, so a CLI can refuse before it
    connects); raises PolicyError before anything is sent."""
    options.validate()
    source = Path(source)
    if not os.path.lexists(source):
        raise UsageError(f"no such file or folder: {source}")
    if not (source.is_dir() and not source.is_symlink()) and source.suffix.lower() != ".zip":
        raise UsageError(f"{source}: give a study folder or a .zip file")
    headers = read_local(source)
    summary = summarise(headers)
    policy.check_isolation(summary, options)
    left_out: list[str] = []
    parts: list[_Part]
    if options.split:
        left_out = [f"{display_name(f.relpath)}: not DICOM, belongs to no study (not sent)"
                    for f in headers.non_dicom]
        left_out += [f"{display_name(f.path)}: DICOM without a StudyInstanceUID (not sent)"
                     for f in summary.no_study]
        by_uid = {s.study_uid: policy.study_line(s) for s in summary.studies}
        parts = []
        for uid, line in by_uid.items():  # summary order: StudyDate, then UID
            files = [f for f in headers.dicom if _study_of(f) == uid]
            parts.append(_Part(HeaderSet(source=headers.source, files=files), line, files))
    else:
        label = policy.study_line(summary.studies[0]) if summary.studies else "no study"
        parts = [_Part(headers, label)]
    override = None
    if options.deidentify:
        policy.check_burned_in(headers, options)
        if not options.split:
            studied = [f for f in headers.dicom if _study_of(f)]
            parts = [_Part(HeaderSet(source=headers.source, files=studied), parts[0].label)]
            left_out = [f"{display_name(f.relpath)}: not DICOM, not in the de-identified copy"
                        for f in headers.non_dicom]
            left_out += [f"{display_name(f.path)}: DICOM without a StudyInstanceUID, not in "
                         "the de-identified copy" for f in summary.no_study]
    elif site.require_deidentified:
        override = policy.check_identifiable(headers, who=f"site {site.name}",
                                              options=options)
    return Plan(summary, parts, left_out, override)


def _subset_packer(source: Path, files: list[FileHeader]) -> Packer:
    def pack(_source: Path, target: Path) -> packer.PackResult:
        def fill(zf: zipfile.ZipFile) -> list[str]:
            if source.is_dir():
                for fh in files:
                    packer.copy_into(zf, source / fh.relpath, fh.relpath)
            else:
                with zipfile.ZipFile(source) as src:
                    for fh in files:
                        with src.open(fh.member or fh.relpath) as fin, \
                                zf.open(fh.relpath, "w", force_zip64=fh.size > 1 << 31) as fout:
                            while chunk := fin.read(packer.CHUNK):
                                fout.write(chunk)
            return [fh.relpath for fh in files]

        return packer.pack_with(target, fill)

    return pack


def _deid_packer(source: Path, part: _Part, options: policy.ContentOptions,
                 mappings: MappingStore, store: CaseStore, site: str, study_id: str) -> Packer:
    def pack(_source: Path, target: Path) -> packer.PackResult:
        def fill(zf: zipfile.ZipFile) -> list[str]:
            try:
                result = deidentify_to_zip(source, zf, headers=part.headers,
                                           allow_burned_in=options.allow_burned_in)
            except FerryError:
                raise
            except Exception as exc:  # pydicom cannot write one instance: nothing is sent
                raise FerryError(f"cannot de-identify {display_name(str(source))}: "
                                 f"{display_name(str(exc))[:200]}") from None
            # the mapping is kept before the upload starts: a result can always be linked
            mappings.drop_case(site, study_id)
            for m in result.mappings:
                mappings.add(m, case_id=study_id, site=site)
            mappings.save()
            store.upsert(site, study_id, deidentified=METHOD)
            return result.members

        return packer.pack_with(target, fill)

    return pack


async def send_case(
    site: Site,
    sftp: asyncssh.SFTPClient,
    engine: transport.Engine,
    source: Path,
    *,
    options: policy.ContentOptions | None = None,
    study_id: str | None = None,
    store: CaseStore | None = None,
    mappings: MappingStore | None = None,
    audit: AuditLog | None = None,
    allow_partial_reads: bool = False,
    pack_progress: Callable[[int, int], None] | None = None,
    on_sent: Callable[[SentStudy], None] | None = None,
    planned: Plan | None = None,
) -> CaseSend:
    """Check, then send ``source`` as one study (or one zip per study with ``split``);
    ``planned``: the result of :func:`plan` for the same source, options and site."""
    options = (options or policy.ContentOptions()).validate()
    store = store or CaseStore()
    source = Path(source)
    if options.split and study_id:
        raise UsageError("--study-id names one study; --split gives each study its own id")
    if study_id:
        check_study_id(study_id)
    if options.deidentify and mappings is None:
        raise VaultError("de-identifying needs the vault, to keep the link from pseudonyms "
                         "to the original patient")
    found = planned if planned is not None else await asyncio.to_thread(plan, source, options,
                                                                         site)
    parts, left_out, override = found.parts, found.left_out, found.override
    out = CaseSend(left_out=left_out, override=override, deidentified=options.deidentify,
                   studies=[p.label for p in parts])
    ids = [study_id or new_study_id() for _ in parts]
    if override is not None:
        (audit or engine.audit).append(
            OVERRIDE_EVENT, site=site.name, source=str(source.resolve()), studies=ids,
            reason=override.reason, findings=override.findings,
            files_checked=override.files_checked, unchecked=override.unchecked,
        )
    for part, sid in zip(parts, ids, strict=True):
        pack: Packer | None = None
        if options.deidentify:
            assert mappings is not None
            pack = _deid_packer(source, part, options, mappings, store, site.name, sid)
        elif part.files is not None:
            pack = _subset_packer(source, part.files)
        sent = await send_study(site, sftp, engine, source, study_id=sid, store=store,
                                pack_progress=pack_progress,
                                allow_partial_reads=allow_partial_reads, pack=pack)
        out.sent.append(sent)
        if on_sent is not None:
            on_sent(sent)
    return out
