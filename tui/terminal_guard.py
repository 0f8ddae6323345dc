"""A dropped terminal never leaves a spinning Ferry (docs/agent.md, "A dropped terminal").

When the terminal goes away — SIGHUP, or stdin at EOF / hung up / an I/O error without any
SIGHUP (an SSH session that dies without hanging up, a TUI started through ``nohup``) —
Textual's Linux input thread can spin in ``select()`` on the dead pty at full CPU forever. This
guard, started before ``App.run()`` (tui/cli/tui_cmd.py), notices within
:data:`CHECK_EVERY` seconds and asks the app to exit: the app's unmount stops the transfer
engine, so running jobs go back to ``queued`` with their verified offsets in the journal (work
the agent runs keeps running there). If the app has not exited :data:`GRACE` seconds later
(the input thread stuck, a write to the dead terminal blocking), the process exits anyway; the
journal is consistent at any instant (backend/transfers/journal.py).

It never reads stdin (that is Textual's): it polls the descriptor for hang-up and error
conditions only, and checks that stdin is still a terminal.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger("ferry.tui")

CHECK_EVERY = 0.2
GRACE = 1.0
EXIT_TERMINAL_GONE = 129  # 128 + SIGHUP, as a shell reports a hung-up job


class TerminalGuard:
    def __init__(self, app: Any, fd: int | None = None) -> None:
        self.app = app
        self.fd = sys.__stdin__.fileno() if fd is None and sys.__stdin__ else (fd or 0)
        self.gone_at: float | None = None
        self.reason = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ferry-terminal-guard",
                                        daemon=True)

    def start(self) -> TerminalGuard:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: self.gone("SIGHUP"))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> str | None:
        """Why the terminal is gone, or None while it is there."""
        try:
            if not os.isatty(self.fd):
                return "stdin is not a terminal (closed, or redirected)"
            poller = select.poll()
            poller.register(self.fd, select.POLLHUP | select.POLLERR | select.POLLNVAL)
            for _fd, events in poller.poll(0):
                if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return "the terminal hung up"
        except OSError as exc:
            return f"the terminal failed: {exc.strerror}"
        return None

    def gone(self, reason: str) -> None:
        if self.gone_at is not None:
            return
        self.gone_at, self.reason = time.monotonic(), reason
        log.warning("terminal gone (%s): quitting; transfers are left resumable", reason)
        # app.exit from the app's own thread; never block this one (a dead loop must not
        # keep the process alive: the grace period below ends it)
        threading.Thread(target=self._ask_exit, daemon=True).start()

    def _ask_exit(self) -> None:
        try:
            self.app.call_from_thread(self.app.exit, None, EXIT_TERMINAL_GONE)
        except Exception:  # the app is not running (yet, or any more)
            log.debug("terminal guard: the app is not running")

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            if self.gone_at is None:
                reason = self.check()
                if reason is not None:
                    self.gone(reason)
            elif time.monotonic() - self.gone_at > GRACE:
                log.warning("terminal gone: the app did not exit within %.1fs; exiting", GRACE)
                logging.shutdown()
                os._exit(EXIT_TERMINAL_GONE)
