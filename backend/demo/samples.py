"""Realistic sample cases for the demo server, in both provider folder conventions.

``/idt`` follows *inbox-outbox-archive* (``From_IDT/``, ``To_IDT/``, ``Old_Cases/<year>/``);
``/ai`` follows *study input/output* (``input/<uuid>/input/<uuid>.zip``,
``output/<uuid>_out/prediction.txt|png``, ``aidp.csv``). All data is synthetic: no real
patient information. The studies the demo sends and inspects are real DICOM written with pydicom
(backend/dicom/synthetic.py, 16x16 pixels, deterministic UIDs): ``/ai``'s input zips and the
local ``study-to-send`` (de-identified: it passes ``demo-ai``'s de-identification rule),
``identifiable-study`` (names, IDs, dates, private tags: refused by ``demo-ai`` unless
``--deidentify``) and ``mixed-studies`` (two patients' studies and a PDF: refused unless
``--split``), so every check of docs/cases.md shows in ``make demo``. ``/idt``'s cases keep
their byte-shaped stand-ins (``fake_dicom``), whose sizes the TUI snapshots show.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import uuid
import zipfile
import zlib
from pathlib import Path

INBOX, OUTBOX, ARCHIVE = "From_IDT", "To_IDT", "Old_Cases"


def fake_dicom(seed: int, size: int = 24 * 1024) -> bytes:
    """128-byte preamble, the ``DICM`` magic and deterministic pseudo-pixel data."""
    body = bytes((seed * 31 + i) % 251 for i in range(size))
    return b"\0" * 128 + b"DICM" + body


def tiny_png(width: int = 64, height: int = 64) -> bytes:
    """A valid greyscale PNG gradient (what an AI provider's ``prediction.png`` stands for)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\0" + bytes((x + y) % 256 for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + (
        chunk(b"IEND", b"")
    )


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["ferry-demo", *map(str, parts)]))


def dicom_instances(seed: int, images: int, *, patient: tuple[str, str] | None = None,
                    deidentified: bool = False, series: tuple[int, str] = (1, "T1 MPRAGE SAG"),
                    modality: str = "MR") -> list[bytes]:
    """``images`` instances of one synthetic series (one study per ``seed``), as Part 10 bytes.
    ``deidentified``: the Basic Profile applied (backend/dicom/deidentify.py), as a site that
    requires de-identified data wants them."""
    from pydicom.dataset import Dataset

    from backend.dicom.deidentify import Pseudonyms, deidentify_dataset
    from backend.dicom.synthetic import SeriesSpec, StudySpec, make_instance

    name, pid = patient or ("DOE^JANE^Q", f"PID-00{seed:05d}")
    spec = StudySpec(patient_name=name, patient_id=pid, accession=f"ACC-{seed:06d}")
    series_spec = SeriesSpec(series[0], series[1], images, modality)
    study_uid, series_uid, frame = _uid(seed, "study"), _uid(seed, series[0]), _uid(seed, "f")
    pseudo = Pseudonyms(secret=f"ferry-demo-{seed}".encode().ljust(32, b"."))
    out: list[bytes] = []
    previous: str | None = None
    for k in range(1, images + 1):
        sop = _uid(seed, series[0], k)
        ds: Dataset = make_instance(spec, study_uid, series_spec, series_uid, k, sop, previous,
                                    frame)
        if deidentified:
            deidentify_dataset(ds, pseudo)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
        previous = sop
    return out


def study_zip(seed: int, images: int = 12) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, data in enumerate(dicom_instances(seed, images, deidentified=True)):
            zf.writestr(zipfile.ZipInfo(f"SE001/IM{i + 1:05d}.dcm", (2026, 11, 3, 10, 15, 0)),
                        data)
    return buf.getvalue()


def _dicom_series(folder: Path, instances: list[bytes], sub: str = "series_001") -> None:
    series = folder / sub
    series.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(instances):
        (series / f"IM{i + 1:04d}.dcm").write_bytes(data)


def _series(folder: Path, seed: int, images: int) -> None:
    series = folder / "series_001"
    series.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        (series / f"IM{i + 1:04d}.dcm").write_bytes(fake_dicom(seed * 100 + i))


def _age(path: Path, days: float) -> None:
    when = time.time() - days * 86400
    for p in [path, *path.rglob("*")]:
        os.utime(p, (when, when))


def populate(root: Path, *, large_file_mib: int = 64) -> dict[str, list[str]]:
    """Fill ``root`` with sample cases; returns what was created, by area."""
    created: dict[str, list[str]] = {"inbox": [], "outbox": [], "archive": [], "studies": []}
    idt = root / "idt"
    for i, (case, days) in enumerate(
        [("CASE-20261118-0031", 3), ("CASE-20261119-0032", 2), ("CASE-20261120-0033", 0.5)]
    ):
        folder = idt / INBOX / case
        _series(folder, i, 8)
        (folder / "report.txt").write_text(
            f"{case}\nProvider: IDT (synthetic demo data)\nFinding: no acute abnormality.\n"
        )
        _age(folder, days)
        created["inbox"].append(case)
    big = idt / INBOX / "CASE-20261121-0034"
    big.mkdir(parents=True)
    with open(big / "volume.raw", "wb") as fh:
        block = bytes(range(256)) * 4096
        for _ in range(large_file_mib):
            fh.write(block)
    created["inbox"].append(big.name)
    (idt / INBOX / "README-from-provider.txt").write_text("Processed cases appear here.\n")
    pending = idt / OUTBOX / "CASE-20261121-0040"
    _series(pending, 40, 4)
    created["outbox"].append(pending.name)
    for year, case in [("2024", "CASE-20240312-0007"), ("2025", "CASE-20250605-0019")]:
        folder = idt / ARCHIVE / year / case
        _series(folder, int(case[-2:]), 3)
        _age(folder, 400)
        created["archive"].append(f"{year}/{case}")

    ai = root / "ai"
    (ai / "input").mkdir(parents=True)
    (ai / "output").mkdir(parents=True)
    for n in range(3):
        seed = hashlib.sha256(f"ferry-demo-study-{n}".encode()).digest()[:16]
        study = str(uuid.UUID(bytes=seed, version=4))
        inp = ai / "input" / study / "input"
        inp.mkdir(parents=True)
        (inp / f"{study}.zip").write_bytes(study_zip(n))
        if n < 2:
            out = ai / "output" / f"{study}_out"
            out.mkdir(parents=True)
            (out / "prediction.txt").write_text(
                f"study {study}\nmodel: demo-v2\nprobability_abnormal: {0.12 + n * 0.5:.2f}\n"
                f"result: {'REVIEW' if n else 'NORMAL'}\n"
            )
            (out / "prediction.png").write_bytes(tiny_png())
            (out / "aidp.csv").write_text("metric,value\nvolume_ml,12.4\nscore,0.87\n")
        created["studies"].append(study)
    return created


def populate_local(local: Path) -> None:
    """The demo's local side (each kept across runs, never replaced): ``study-to-send`` (one
    de-identified study), ``identifiable-study`` and ``mixed-studies`` (see the docstring)."""
    study = local / "study-to-send"
    if not study.exists():
        _dicom_series(study, dicom_instances(77, 6, deidentified=True))
    ident = local / "identifiable-study"
    if not ident.exists():
        _dicom_series(ident, dicom_instances(78, 4))
        _dicom_series(ident, dicom_instances(78, 2, series=(2, "T2 FLAIR AX")), "series_002")
    mixed = local / "mixed-studies"
    if not mixed.exists():
        _dicom_series(mixed, dicom_instances(79, 3), "jane_mr")
        _dicom_series(mixed, dicom_instances(80, 2, patient=("ROE^RICHARD", "PID-5550123"),
                                             series=(7, "CT HEAD AXIAL"), modality="CT"),
                      "richard_ct")
        (mixed / "referral.pdf").write_bytes(b"%PDF-1.4 synthetic referral letter\n")
    readme = local / "README-demo.txt"
    if not readme.exists():
        readme.write_text(
            "Synthetic studies for the Ferry demo (no real patient):\n"
            "  study-to-send/       one de-identified study: send it with 'c' / ferry case send\n"
            "  identifiable-study/  names, IDs, dates: demo-ai refuses it unless --deidentify\n"
            "  mixed-studies/       two patients and a PDF: refused unless --split\n"
            "See what each holds with: ferry case inspect FOLDER\n")
