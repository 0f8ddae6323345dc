"""``ferry case inspect PATH|SITE:PATH``: what a case holds, study by study, and what in it
still identifies the patient.

Reads DICOM headers only (:mod:`backend.dicom.reader`; remotely the first KiB of each file,
many at a time) and prints the summary (:mod:`backend.dicom.summary`; patient masked unless
``--full-names``) and the counts of the Basic Profile check (:mod:`backend.dicom.checker`).
Registered under ``ferry case`` by :mod:`tui.cli.case_cmd`. Exit 0 whatever the case holds (it
only looks); errors are the usual one line and exit code (docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import humanize

from backend import remote
from backend.dicom import checker, reader
from backend.dicom.summary import CaseSummary, summarise
from backend.names import display_name
from tui.cli.connect import sftp_for
from tui.cli.output import info, print_json


def register(csub: argparse._SubParsersAction) -> None:
    p = csub.add_parser(
        "inspect",
        help="list the studies a folder or zip holds (DICOM headers only)",
        description=(
            "Read the DICOM headers (never the pixel data) of PATH (a folder or a .zip) or of "
            "the remote folder SITE:PATH, and list its studies: patient (masked unless "
            "--full-names), study date, modality, description, series and instance counts, "
            "size, non-DICOM files; then count what the DICOM PS3.15 Annex E Basic Profile "
            "would remove or replace. Exit 0 whatever it finds."),
    )
    p.add_argument("target", metavar="PATH|SITE:PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--full-names", action="store_true",
                   help="show patient names, IDs and accession numbers in full")
    p.set_defaults(func=cmd_inspect)


async def _remote(site_name: str, path: str) -> reader.HeaderSet:
    async with sftp_for(site_name) as (site, _conn, sftp):
        top = remote.resolve(site.remote_dir, path)
        return await reader.read_remote(sftp, top, label=f"{site.name}:{top}")


def read_target(target: str) -> reader.HeaderSet:
    """Local path if it exists (or looks local), else ``SITE:PATH``."""
    local = Path(target)
    spec = remote.parse_remote_spec(target)
    if spec is None or local.exists():
        return reader.read_local(local)
    return asyncio.run(_remote(*spec))


def _size(n: int) -> str:
    return humanize.naturalsize(n, binary=True)


def _print_summary(summary: CaseSummary, report: checker.CheckReport) -> None:
    d = display_name
    studies = len(summary.studies)
    print(f"{d(summary.source)}: {summary.files} file(s), {_size(summary.total_size)}, "
          f"{studies} stud{'y' if studies == 1 else 'ies'}")
    for st in summary.studies:
        patient = " ".join(x for x in (d(st.patient_name), f"({d(st.patient_id)})"
                                       if st.patient_id else "") if x) or "(no patient)"
        print(f"study {d(st.study_uid)}")
        print(f"  patient {patient}  date {d(st.study_date) or '-'}  "
              f"{d('/'.join(st.modalities)) or '-'}  {d(st.description) or '(no description)'}")
        print(f"  {st.instances} instance(s) in {len(st.series)} series, {_size(st.size)}"
              + (f", {st.burned_in} with burned-in annotation" if st.burned_in else "")
              + (", identity removed" if st.identity_removed else ""))
        for se in st.series:
            print(f"    series {d(se.number) or '-':>4}  {d(se.modality) or '-':<6} "
                  f"{se.instances:>5} instance(s)  {d(se.description)}")
    for other in summary.no_study:
        print(f"no study: {d(other.path)} ({_size(other.size)})")
    for other in summary.non_dicom:
        print(f"not DICOM: {d(other.path)} ({_size(other.size)})")
    if summary.bytes_read:
        info(f"read {_size(summary.bytes_read)} of headers from {_size(summary.total_size)}")
    for line in summary.skipped:
        info(f"ferry: warning: not read: {d(line)}")
    if studies > 1:
        info(f"ferry: warning: {studies} studies in one case: a provider that wants one study "
             "per zip will refuse it")
    if report.findings:
        files = report.files_with_findings
        print(f"identifying data (DICOM PS3.15 Annex E Basic Profile): {len(report.findings)} "
              f"attribute(s) in {files} of {report.files_checked} DICOM file(s)")
        by_category: dict[str, int] = {}
        for f in report.findings:
            by_category[f.category] = max(by_category.get(f.category, 0), f.files)
        for category, count in sorted(by_category.items()):
            print(f"  {category}: {count} file(s)")
    elif report.files_checked:
        print(f"no identifying attribute found in {report.files_checked} DICOM file(s) "
              "(headers only: pixel data and replaced values are not verified)")
    if report.unchecked:
        print(f"  {len(report.unchecked)} file(s) not checked (not DICOM)")


def cmd_inspect(args: argparse.Namespace) -> int:
    headers = read_target(args.target)
    summary = summarise(headers, full_names=args.full_names)
    report = checker.check(headers)
    if args.json:
        print_json({**summary.to_json(), "check": report.to_json()})
    else:
        _print_summary(summary, report)
    return 0
