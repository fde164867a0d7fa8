"""Writes to the API server run concurrently, in order per key.

The controller decides on one thread (the allocator is not shared) but must not wait for each write's round trip
before deciding the next Service: a burst of creations would be paced by our latency, not by the API server.
Jobs go to a small pool of worker threads; two jobs of the same key never run at once and run in the order they
were submitted, so a Service's writes land as decided. `submit` blocks while `max_pending` jobs wait: the
decisions cannot run arbitrarily far ahead of what the API server accepts.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class KeyedPipeline:
    def __init__(self, name: str, workers: int = 8, max_pending: int = 256) -> None:
        if workers < 1 or max_pending < 1:
            raise ValueError("a pipeline needs at least one worker and one pending slot")
        self.name = name
        self.max_pending = max_pending
        self._jobs: dict[str, deque[Job]] = {}  # per key, not started yet
        self._ready: deque[str] = deque()  # keys with jobs and none running
        self._running: set[str] = set()
        self._pending = 0  # submitted and not finished
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished (running ones included)."""
        with self._changed:
            return self._pending

    def submit(self, key: str, job: Job) -> None:
        with self._changed:
            while self._pending >= self.max_pending and not self._closed:
                self._changed.wait()
            if self._closed:
                raise RuntimeError(f"pipeline {self.name} is closed")
            queued = self._jobs.setdefault(key, deque())
            queued.append(job)
            self._pending += 1
            if key not in self._running and len(queued) == 1:
                self._ready.append(key)
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted job has finished; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finish what was submitted (up to `timeout`), then end the workers."""
        self.flush(timeout)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=1.0)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._ready or self._closed)
                if not self._ready:
                    return
                key = self._ready.popleft()
                job = self._jobs[key].popleft()
                self._running.add(key)
            try:
                job()
            except Exception:  # a job reports its own failures; this only keeps the worker alive
                log.exception("pipeline %s: a job for %s failed", self.name, key)
            with self._changed:
                self._running.discard(key)
                self._pending -= 1
                if self._jobs[key]:
                    self._ready.append(key)
                else:
                    del self._jobs[key]
                self._changed.notify_all()
