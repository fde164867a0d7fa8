"""The speaker's liveness probe watches its reconcile loop, not its process: a loop that hangs (the process and
every other thread alive) turns /healthz red within the stall timeout, and green again when it moves on."""

from __future__ import annotations

import threading
import time

from metallb_fast.k8s.client import KubeClient
from metallb_fast.lab.waiting import wait_for
from metallb_fast.obs import http
from metallb_fast.obs.health import Health
from metallb_fast.speaker.loop import Speaker, SpeakerOptions
from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.test_status_command import StandInFastPath
from tests.unit.test_health_http import get

STALL_AFTER_S = 3.0  # above the loop's longest sleep between passes (1 s)


def test_a_hung_reconcile_loop_turns_healthz_red_while_the_process_lives(
    kube_env: KubeEnv, metallb_namespace: str
) -> None:
    health = Health(stall_after_s=STALL_AFTER_S)
    client = KubeClient.from_kubeconfig(str(kube_env.kubeconfig_path("speaker")))
    speaker = Speaker(client, StandInFastPath(), SpeakerOptions(node_name="health-node"), health=health)
    hang, release = threading.Event(), threading.Event()
    passes = speaker._update_readiness

    def one_pass() -> None:  # called by the loop on every pass: where a hung reconcile would stop it
        if hang.is_set():
            release.wait(60)
        passes()

    speaker._update_readiness = one_pass  # type: ignore[method-assign]
    thread = threading.Thread(target=speaker.run, daemon=True)
    thread.start()
    server = http.serve(0, "127.0.0.1", health)
    healthz = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        wait_for(lambda: health._last_beat is not None, timeout=60, what="the loop's first pass")
        time.sleep(2 * STALL_AFTER_S)  # a healthy loop stays green across several stall windows
        assert get(healthz)[0] == 200

        hang.set()
        hung_at = time.monotonic()
        wait_for(lambda: get(healthz)[0] == 503, timeout=STALL_AFTER_S + 3, what="/healthz red")
        assert time.monotonic() - hung_at <= STALL_AFTER_S + 2  # within the timeout (+ the last pass's sleep)
        assert thread.is_alive() and "no progress" in get(healthz)[1]

        release.set()
        wait_for(lambda: get(healthz)[0] == 200, timeout=10, what="/healthz green again")
    finally:
        release.set()
        speaker.stop()
        thread.join(timeout=15)
        server.shutdown()
        server.server_close()
        client.close()
