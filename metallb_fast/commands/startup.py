"""What stops a command before it runs, said once: one JSON log line (the programs) or one stderr line (the
operator tools), and a non-zero exit, never a traceback. A crash after start-up is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator

from metallb_fast.k8s.client import ApiError, ApiUnavailable, KubeClient
from metallb_fast.k8s.connection import SERVICE_ACCOUNT, KubeconfigError

log = logging.getLogger(__name__)

EXIT_STARTUP = 1
REACH_TIMEOUT_S = 30.0  # a program keeps trying this long at start (the API server may be seconds from up)


class StartupError(Exception):
    """The command cannot start; the message says what is wrong and what to do."""


def fail(error: StartupError | str, **fields: object) -> int:
    """Log a start-up failure as MetalLB does (op=startup, level error) and return the exit status."""
    log.error("%s", error, extra={"op": "startup", **fields})
    return EXIT_STARTUP


def _where(kubeconfig: str | None) -> str:
    if kubeconfig:
        return f"--kubeconfig {kubeconfig}"
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").is_file()
    if in_pod:
        return "the in-cluster service account"
    return (
        "no kubeconfig: not in a pod (no KUBERNETES_SERVICE_HOST and service account token), and "
        "$KUBECONFIG / ~/.kube/config"
    )


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """urllib3 logs a warning per retried connection: while we probe, the one line of our verdict says it all."""
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool_log.setLevel(level)


def _cause(error: ApiError) -> str:
    """The socket's word ("[Errno 111] Connection refused"), not urllib3's nested retry wrappers; for an answer
    that was not a success, its status and message."""
    if not isinstance(error, ApiUnavailable):
        return f"HTTP {error.status}: {error.message}"
    cause = error.__cause__
    reason = getattr(cause, "reason", None) or cause or error
    return str(reason).rsplit(": ", 1)[-1]


def connect(
    kubeconfig: str | None,
    reach_timeout_s: float = REACH_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> KubeClient:
    """A client whose API server answered an authenticated request (GET /api, which every authenticated user may
    read), tried for up to `reach_timeout_s` while unreachable; refused credentials fail at once."""
    try:
        client = KubeClient.from_kubeconfig(kubeconfig)
    except KubeconfigError as error:
        raise StartupError(f"cannot load the API server's address and credentials ({_where(kubeconfig)}): "
                           f"{error}; pass --kubeconfig PATH") from None
    with _quiet_retries():
        return _reach(client, kubeconfig, reach_timeout_s, sleep)


def _reach(client: KubeClient, kubeconfig: str | None, reach_timeout_s: float,
           sleep: Callable[[float], None]) -> KubeClient:
    server = client.connection.server
    deadline = time.monotonic() + reach_timeout_s
    while True:
        try:
            client.request("GET", "/api", timeout=5.0)
            return client
        except ApiError as error:
            # Unreachable, or up but not serving yet (a control-plane restart answers 5xx; 429 = throttled):
            # wait for it. Any other answer (401, 403, ...) will not change by waiting.
            if not (isinstance(error, ApiUnavailable) or error.status >= 500 or error.status == 429):
                client.close()
                hint = " (the credentials were refused: a wrong or expired token?)" if error.status == 401 else ""
                raise StartupError(f"API server {server} refused GET /api with HTTP {error.status}{hint}: "
                                   f"{error.message}") from None
            if time.monotonic() >= deadline:
                client.close()
                waited = f" for {reach_timeout_s:.0f} s" if reach_timeout_s > 0 else ""
                raise StartupError(f"API server {server} unreachable{waited} ({_where(kubeconfig)}): "
                                   f"{_cause(error)}") from None
            sleep(1.0)
