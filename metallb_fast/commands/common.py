"""What the long-running commands share: logging setup and SIGTERM/SIGINT handling."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from metallb_fast.obs.logs import configure_logging
from metallb_fast.vocabulary import DEFAULT_NAMESPACE, NAMESPACE_ENV

HOST_ENV = "METALLB_HOST"


def default_namespace() -> str:
    """Where the programs read the metallb.io objects unless --namespace says otherwise."""
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


def add_namespace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        default=default_namespace(),
        help=f"namespace of the metallb.io objects (default: ${NAMESPACE_ENV}, else {DEFAULT_NAMESPACE})",
    )


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags the controller and the speaker share (MetalLB's names and defaults)."""
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, else ~/.kube/config)")
    add_namespace_argument(parser)
    parser.add_argument("--lb-class", default=None, help="handle only Services of this loadBalancerClass")
    parser.add_argument(
        "--api-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to keep trying to reach the API server at start before exiting (default: 30)",
    )
    parser.add_argument("--log-level", default="info", choices=["all", "debug", "info", "warn", "error", "none"])
    parser.add_argument(
        "--metrics-port", type=int, default=7472, help="port of /metrics, /healthz and /readyz (0 = off)"
    )
    parser.add_argument(
        "--metrics-host",
        default=os.environ.get(HOST_ENV) or "0.0.0.0",
        help=f"address to serve them on (default: ${HOST_ENV}, the host IP in the speaker's manifest, as MetalLB; "
        "else 0.0.0.0; pass 0.0.0.0 to serve on every address)",
    )


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
