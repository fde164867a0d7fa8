"""What the long-running commands share: logging setup and SIGTERM/SIGINT handling."""

from __future__ import annotations

import logging
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


def run_in_worker(run: Callable[[], None], stop: Callable[[], None]) -> int:
    """Run a program's loop on a worker thread and keep the main thread free for signals, which only the main
    thread receives; SIGTERM/SIGINT call `stop`. Returns the exit status: 0 once the loop has finished its work
    in flight after a stop, 1 when the loop died of an error (so Kubernetes restarts it instead of seeing a
    clean exit)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as error:
            logging.getLogger(__name__).critical("the main loop died: %s", error, exc_info=True, extra={"op": "crash"})
            failure.append(error)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    install_stop_signals(stop)
    worker = threading.Thread(target=target, name="reconcile")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(timeout=0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failure else 0
