"""Graceful stop on SIGINT / SIGTERM: the current step finishes, a checkpoint is written,
and the run exits with status 0.

``StopFlag`` installs handlers that only set a flag (a second signal restores the default
handler, so a second Ctrl-C still interrupts at once). The trainer polls ``requested``
between steps; under torchrun the flag is OR-ed over ranks so every rank stops at the
same step. Handlers are installed only in the main thread and removed on exit.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
