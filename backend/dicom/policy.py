"""What a case may hold before it leaves: one study per zip, and a site's de-identification rule.

Two checks, run on the headers of :mod:`backend.dicom.reader` before anything is packed or
uploaded, shared by ``ferry case send``, the TUI's case send and ``ferry share create``:

* :func:`check_isolation` — the provider guides want each study in its own uniquely named zip:
  a source holding more than one StudyInstanceUID, DICOM files without one, or files that are
  not DICOM is refused (:class:`backend.errors.PolicyError`, exit 17) with the list of what it
  holds, unless the caller splits it (``--split``) or lets non-DICOM files travel
  (``--allow-non-dicom``, for reports that belong with the images);
* :func:`check_identifiable` — on a site with ``require_deidentified``, every DICOM file is
  checked against the DICOM PS3.15 Annex E Basic Profile (:mod:`backend.dicom.checker`) and a
  source that still carries an identifying attribute (or holds files that cannot be checked) is
  refused with one line per attribute and its file count, unless the caller de-identifies it
  (``--deidentify``) or overrides with a reason (``--allow-identifiable --reason``: the caller
  writes the reason to the audit log as its own event).

:func:`check_burned_in` refuses to de-identify instances that declare text burned into their
pixels (no header edit removes it) unless ``allow_burned_in``. Messages never hold a value:
attribute names, counts and masked patients only. An aid for the operator, not a certification
(docs/cases.md, "DICOM").
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.dicom import checker
from backend.dicom.deidentify import burned_in_files
from backend.dicom.reader import HeaderSet
from backend.dicom.summary import CaseSummary, StudySummary
from backend.errors import PolicyError, UsageError
from backend.names import display_name

MAX_LINES = 40  # lines of a refusal listed (the rest is counted)


@dataclass
class ContentOptions:
    """What the user allowed for this send or share (the CLI flags of docs/cli.md)."""

    split: bool = False  # one zip per study
    allow_non_dicom: bool = False  # non-DICOM files travel with the images
    deidentify: bool = False  # send a de-identified copy (backend/dicom/deidentify.py)
    allow_identifiable: bool = False  # override the site's rule ...
    reason: str = ""  # ... for this reason (audited)
    allow_burned_in: bool = False  # de-identify although the pixels may show text

    def validate(self) -> ContentOptions:
        self.reason = " ".join(self.reason.split())
        if self.allow_identifiable and not self.reason:
            raise UsageError("--allow-identifiable needs --reason TEXT (it is written to the "
                             "audit log)")
        if self.reason and not self.allow_identifiable:
            raise UsageError("--reason goes with --allow-identifiable")
        if self.allow_identifiable and self.deidentify:
            raise UsageError("--deidentify and --allow-identifiable contradict each other")
        if self.allow_burned_in and not self.deidentify:
            raise UsageError("--allow-burned-in goes with --deidentify")
        return self


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def study_line(study: StudySummary) -> str:
    """One display-safe line for a study (patient masked as the summary was made)."""
    d = display_name
    patient = " ".join(x for x in (d(study.patient_name),
                                   f"({d(study.patient_id)})" if study.patient_id else "") if x)
    return (f"study {d(study.study_uid)}: {patient or '(no patient)'}, "
            f"{d(study.study_date) or 'no date'}, {d('/'.join(study.modalities)) or '-'}, "
            f"{_plural(study.instances, 'instance')} in {len(study.series)} series")


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]


def check_isolation(summary: CaseSummary, options: ContentOptions) -> None:
    """Refuse anything but one study (see the module docstring)."""
    # files of no study: not DICOM, or DICOM without a StudyInstanceUID
    studies, others = len(summary.studies), bool(summary.non_dicom or summary.no_study)
    if options.split:  # one zip per study; files of no study cannot be assigned: left out
        ok = studies >= 1
    elif options.allow_non_dicom:  # reports with the images, or a case that is not DICOM
        ok = studies <= 1 and (studies == 1 or others)
    else:
        ok = studies == 1 and not others
    if ok:
        return
    found = [_plural(len(summary.studies), "study", "studies")]
    if summary.no_study:
        found.append(_plural(len(summary.no_study), "DICOM file") + " without a study")
    if summary.non_dicom:
        found.append(_plural(len(summary.non_dicom), "non-DICOM file"))
    lines = [study_line(s) for s in summary.studies]
    lines += [f"no study: {display_name(f.path)}" for f in summary.no_study]
    lines += [f"not DICOM: {display_name(f.path)} ({f.reason})" for f in summary.non_dicom]
    if not summary.studies:
        why = "it holds no DICOM study"
    elif len(summary.studies) > 1 and not options.split:
        why = "a provider needs each study in its own zip"
    else:
        why = "a zip must hold exactly one study and nothing else"
    hints = []
    if len(summary.studies) > 1 and not options.split:
        hints.append("--split sends one zip per study")
    if others and not options.allow_non_dicom:
        hints.append("--allow-non-dicom lets reports travel with the images")
    raise PolicyError(
        f"{display_name(summary.source)} holds {', '.join(found)}: {why}; nothing was sent",
        lines=_capped(lines), kind="isolation", hint="; ".join(hints) or None,
    )


@dataclass
class Override:
    """An identifiable source sent anyway: what the audit event records (no values)."""

    reason: str
    findings: dict[str, int]  # attribute name -> files
    files_checked: int
    unchecked: int


# the order a refusal lists findings in: what names the patient first (backend/dicom/profile.py
# categories, then checker.py's special keys); anything else after, alphabetically
_FIRST = ("patient name", "patient ID", "birth date", "address", "accession number",
          "burned-in annotation", "private attributes", "patient characteristics",
          "patient history", "physicians and staff", "institution", "exam identifiers",
          "dates and times", "descriptions", "overlays", "UIDs", "de-identification flag")


def _rank(f: checker.AttributeCount) -> tuple[int, str, str]:
    return (_FIRST.index(f.category) if f.category in _FIRST else len(_FIRST), f.category,
            f.key)


def finding_lines(report: checker.CheckReport) -> list[str]:
    """One line per attribute found, with its file count, patient identifiers first."""
    lines = [f"{f.name} {f.key}: {_plural(f.files, 'file')}"
             if f.key.startswith("(") else f"{f.name}: {_plural(f.files, 'file')}"
             for f in sorted(report.findings, key=_rank)]
    lines += [f"not checked (not DICOM): {display_name(u)}" for u in report.unchecked]
    return _capped(lines)


def check_identifiable(headers: HeaderSet, *, who: str, options: ContentOptions,
                       what: str = "sent") -> Override | None:
    """Where de-identified data is required (``who``: "site NAME" or "the share policy"):
    refuse, or return the override to audit. Call it only when the rule applies and the
    source is not being de-identified."""
    report = checker.check(headers)
    if report.clean:
        return None
    counts = {f.name: f.files for f in report.findings}
    if options.allow_identifiable:
        return Override(options.reason, counts, report.files_checked, len(report.unchecked))
    parts = []
    if report.findings:
        parts.append(f"{_plural(len(report.findings), 'identifying attribute')} in "
                     f"{report.files_with_findings} of "
                     f"{_plural(report.files_checked, 'DICOM file')}")
    if report.unchecked:
        parts.append(f"{_plural(len(report.unchecked), 'file')} that cannot be checked "
                     "(not DICOM)")
    raise PolicyError(
        f"{who} requires de-identified studies and {display_name(headers.source)} holds "
        f"{' and '.join(parts)} (DICOM PS3.15 Annex E Basic Profile); nothing was {what}",
        lines=finding_lines(report), kind="identifiable",
        hint="--deidentify sends a de-identified copy; --allow-identifiable --reason TEXT "
             "overrides (written to the audit log)",
    )


def check_burned_in(headers: HeaderSet, options: ContentOptions) -> None:
    """Refuse to de-identify pixels that declare burned-in text, unless allowed."""
    burned = burned_in_files(headers)
    if not burned or options.allow_burned_in:
        return
    raise PolicyError(
        f"{_plural(len(burned), 'file')} declare BurnedInAnnotation = YES: text in the pixels "
        "(names, dates, IDs) cannot be removed by editing headers, so a de-identified copy "
        "would still identify the patient; nothing was sent",
        lines=_capped([f"burned-in: {display_name(b)}" for b in burned]), kind="burned-in",
        hint="leave those files out, or --allow-burned-in if you have checked the images",
    )
