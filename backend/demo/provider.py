"""A simulated processing provider for ``ferry demo``: it answers uploaded studies, slowly.

It watches the demo server's folder on disk (no SFTP): every ``ai/input/<id>/input/<id>.zip``
(under its *final* name; a transfer's temp name is ignored) without an ``ai/output/<id>_out/``
gets one ``delay`` seconds after it first appeared; new uploads in ``idt/To_IDT/``
(``<name>.zip`` or a case folder) get a processed case in ``idt/From_IDT/<name>/``. Results are
written slowly (one file after another over about ``spread`` seconds, the image in pieces), so
the watcher's "stable across two polls" rule has something to wait for. It only ever creates
files; it never deletes or renames anything.

``stop = start_provider(demo_root)`` starts it in a daemon thread; ``stop()`` ends it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backend.demo.samples import INBOX, OUTBOX, fake_dicom, tiny_png

log = logging.getLogger("ferry.demo.provider")

POLL = 0.5


def _write_slowly(
    path: Path, data: bytes, pieces: int, pause: float, stop: threading.Event
) -> None:
    step = max(1, -(-len(data) // pieces))
    with open(path, "wb") as fh:
        for start in range(0, len(data), step):
            fh.write(data[start:start + step])
            fh.flush()
            if stop.wait(pause):
                return


def write_study_results(output: Path, study_id: str, spread: float,
                        stop: threading.Event | None = None) -> Path:
    """``<output>/<study_id>_out/`` with prediction.txt, prediction.png and aidp.csv."""
    stop = stop or threading.Event()
    out = output / f"{study_id}_out"
    out.mkdir(parents=True, exist_ok=True)
    pause = spread / 6
    score = (sum(study_id.encode()) % 100) / 100
    (out / "prediction.txt").write_text(
        f"study {study_id}\nmodel: demo-v2 (simulated provider)\n"
        f"probability_abnormal: {score:.2f}\nresult: {'REVIEW' if score > 0.5 else 'NORMAL'}\n"
    )
    if stop.wait(pause):
        return out
    _write_slowly(out / "prediction.png", tiny_png(), 4, pause, stop)
    if stop.wait(pause):
        return out
    (out / "aidp.csv").write_text(f"metric,value\nscore,{score:.2f}\n")
    return out


def write_case_results(inbox: Path, case: str, spread: float,
                       stop: threading.Event | None = None) -> Path:
    """``<inbox>/<case>/`` with a report and a small processed series."""
    stop = stop or threading.Event()
    folder = inbox / case
    series = folder / "series_001"
    series.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (series / f"IM{i + 1:04d}.dcm").write_bytes(fake_dicom(i, 8 * 1024))
        if stop.wait(spread / 4):
            return folder
    (folder / "report.txt").write_text(
        f"{case}\nProvider: IDT (simulated demo provider)\nFinding: no acute abnormality.\n"
    )
    return folder


class Provider:
    def __init__(self, root: Path, delay: float, spread: float) -> None:
        self.root = Path(root)
        self.delay = delay
        self.spread = spread
        self.stop_event = threading.Event()
        self.first_seen: dict[str, float] = {}
        self.done: set[str] = set()
        self.outbox_known = set(self._outbox_names())

    def _outbox_names(self) -> list[str]:
        outbox = self.root / "idt" / OUTBOX
        if not outbox.is_dir():
            return []
        return [p.name for p in outbox.iterdir() if not p.name.startswith(".")]

    def _pending(self) -> list[tuple[str, Callable[[], object]]]:
        found: list[tuple[str, Callable[[], object]]] = []
        ai = self.root / "ai"
        inputs = ai / "input"
        if inputs.is_dir():
            for study in sorted(inputs.iterdir()):
                final = study / "input" / f"{study.name}.zip"
                out = ai / "output" / f"{study.name}_out"
                if final.is_file() and not final.is_symlink() and not out.exists():
                    found.append((f"ai:{study.name}", functools.partial(
                        write_study_results, ai / "output", study.name, self.spread,
                        self.stop_event)))
        inbox = self.root / "idt" / INBOX
        for name in self._outbox_names():
            if name in self.outbox_known:
                continue
            path = self.root / "idt" / OUTBOX / name
            if path.is_file() and not name.endswith(".zip"):
                continue  # a temp name or a stray file: not (yet) an upload
            case = name[:-4] if name.endswith(".zip") else name
            if not (inbox / case).exists():
                found.append((f"idt:{name}", functools.partial(
                    write_case_results, inbox, case, self.spread, self.stop_event)))
        return found

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = time.monotonic()
            for key, produce in self._pending():
                if key in self.done:
                    continue
                first = self.first_seen.setdefault(key, now)
                if now - first >= self.delay:
                    self.done.add(key)
                    try:
                        produce()
                    except OSError as exc:
                        log.warning("simulated provider could not write results: %s", exc)
            self.stop_event.wait(POLL)


def start_provider(
    demo_root: Path, *, delay: float = 3.0, spread: float = 2.0
) -> Callable[[], None]:
    """Start the simulated provider on ``demo_root``; returns the function that stops it."""
    provider = Provider(demo_root, delay, spread)
    thread = threading.Thread(target=provider.run, name="ferry-demo-provider", daemon=True)
    thread.start()

    def stop() -> None:
        provider.stop_event.set()
        with contextlib.suppress(RuntimeError):
            thread.join(10)

    return stop
