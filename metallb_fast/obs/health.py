"""Liveness and readiness of a program, as the kubelet's probes ask for them (/healthz, /readyz: obs/http.py).

Ready: the program has done what it needs before it can be trusted (caches synced; for the speaker, its first
plan applied to the fast path). Live: its decision loop still makes progress. A loop that wakes on a timer (the
speaker's, at least every second) beats on every pass, so a hung loop fails liveness after `stall_after_s` and the
kubelet restarts it; a loop that sleeps until work arrives (the controller's) is live while its thread runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


class Health:
    def __init__(self, stall_after_s: float | None = None) -> None:
        self.stall_after_s = stall_after_s
        self._lock = threading.Lock()
        self._ready = Verdict(False, "starting: caches not synced yet")
        self._last_beat: float | None = None
        self._stopped: str | None = None

    def set_ready(self, ok: bool, reason: str) -> None:
        with self._lock:
            self._ready = Verdict(ok, reason)

    def beat(self) -> None:
        with self._lock:
            self._last_beat = time.monotonic()

    def stopped(self, reason: str) -> None:
        """The loop has ended (a stop, or an error that ends the program)."""
        with self._lock:
            self._stopped = reason
            self._ready = Verdict(False, reason)

    def readiness(self) -> Verdict:
        with self._lock:
            return self._ready

    def liveness(self, now: float | None = None) -> Verdict:
        with self._lock:
            if self._stopped is not None:
                return Verdict(False, self._stopped)
            if self.stall_after_s is None or self._last_beat is None:
                return Verdict(True, "running")
            idle = (time.monotonic() if now is None else now) - self._last_beat
            if idle > self.stall_after_s:
                return Verdict(False, f"the decision loop made no progress for {idle:.1f} s")
            return Verdict(True, "running")
