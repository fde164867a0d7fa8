"""What the long-running commands share: logging setup and SIGTERM/SIGINT handling."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from metallb_fast.obs.logs import configure_logging


def setup_logging(level: str) -> None:
    configure_logging("critical" if level == "none" else ("warning" if level == "warn" else level))


def install_stop_signals(stop: Callable[[], None]) -> None:
    """SIGTERM (kubelet) and SIGINT (a person) both ask for an orderly stop; a second one is not special."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_in_worker(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run a program's loop on a worker thread and keep the main thread free for signals, which only the main
    thread receives; SIGTERM/SIGINT call `stop`, and this returns once the loop has finished its work in flight."""
    install_stop_signals(stop)
    worker = threading.Thread(target=run, name="reconcile")
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.5)
