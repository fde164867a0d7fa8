"""The controller program against a real kube-apiserver: addresses, annotation, events, config errors, restarts."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from metallb_fast.k8s.secrets import ensure_memberlist_secret
from metallb_fast.lab.waiting import wait_for
from metallb_fast.obs import metrics
from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.controller_harness import RunningController, get_json, ingress, pool, service

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"


def test_service_gets_address_annotation_and_event(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, run_controller: Callable[[], RunningController]
) -> None:
    kube_env.kubectl("apply", "-f", "-", input=pool("lab", "192.0.2.10-192.0.2.12"))
    run_controller()
    kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, "web"))
    assert wait_for(lambda: ingress(kube_env, lb_namespace, "web"), what="web's address") == ["192.0.2.10"]
    svc = get_json(kube_env, "service", "-n", lb_namespace, "web")
    assert svc["metadata"]["annotations"][POOL_ANNOTATION] == "lab"

    def allocated_event() -> list[dict[str, Any]]:
        events = get_json(kube_env, "events", "-n", lb_namespace)["items"]
        return [e for e in events if e["reason"] == "IPAllocated" and e["involvedObject"]["name"] == "web"]

    event = wait_for(allocated_event, what="IPAllocated event")[0]
    assert event["message"] == 'Assigned IP ["192.0.2.10"]'
    assert event["source"]["component"] == "metallb-controller"


def test_pool_shrink_delete_and_waiting_service(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, run_controller: Callable[[], RunningController]
) -> None:
    kube_env.kubectl("apply", "-f", "-", input=pool("small", "192.0.2.20-192.0.2.21"))
    run_controller()
    for name in ("a", "b", "c"):
        kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, name))
    wait_for(lambda: ingress(kube_env, lb_namespace, "a") and ingress(kube_env, lb_namespace, "b"), what="a, b")
    assigned = {n: ingress(kube_env, lb_namespace, n) for n in ("a", "b", "c")}
    assert sorted(assigned["a"] + assigned["b"]) == ["192.0.2.20", "192.0.2.21"]
    assert assigned["c"] == []  # the pool is full: c waits

    # Deleting a Service gives its address to the one waiting.
    freed = assigned["a"]
    kube_env.kubectl("delete", "service", "-n", lb_namespace, "a")
    assert wait_for(lambda: ingress(kube_env, lb_namespace, "c"), what="c's address") == freed

    # Shrinking the pool re-assigns the Service whose address left it.
    kube_env.kubectl("apply", "-f", "-", input=pool("small", "192.0.2.20/32"))
    wait_for(
        lambda: sorted(ingress(kube_env, lb_namespace, "b") + ingress(kube_env, lb_namespace, "c"))
        == ["192.0.2.20"],
        what="only one Service left in the shrunk pool",
    )

    # Deleting the pool clears every status.
    kube_env.kubectl("delete", "ipaddresspool", "-n", "metallb-system", "small")
    wait_for(
        lambda: not ingress(kube_env, lb_namespace, "b") and not ingress(kube_env, lb_namespace, "c"),
        what="statuses cleared",
    )


def test_restart_keeps_addresses_and_invalid_pool_changes_nothing(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, run_controller: Callable[[], RunningController]
) -> None:
    kube_env.kubectl("apply", "-f", "-", input=pool("lab", "192.0.2.30-192.0.2.39"))
    first = run_controller()
    names = [f"s{i}" for i in range(5)]
    for name in names:
        kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, name))
    wait_for(lambda: all(ingress(kube_env, lb_namespace, n) for n in names), what="all addresses")
    before = {n: ingress(kube_env, lb_namespace, n) for n in names}
    first.stop()

    # A Service created while the controller is down must not take an address from the others on restart.
    kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, "late"))
    run_controller()
    wait_for(lambda: ingress(kube_env, lb_namespace, "late"), what="late's address")
    assert {n: ingress(kube_env, lb_namespace, n) for n in names} == before

    # An overlapping pool is reported and changes nothing.
    kube_env.kubectl("apply", "-f", "-", input=pool("overlap", "192.0.2.35/32"))

    def invalid_state() -> dict[str, Any] | None:
        states = get_json(kube_env, "configurationstates", "-n", "metallb-system")["items"]
        return next((s for s in states if (s.get("status") or {}).get("result") == "Invalid"), None)

    state = wait_for(invalid_state, what="ConfigurationState Invalid")
    assert "overlap" in state["status"]["errorSummary"]
    assert {n: ingress(kube_env, lb_namespace, n) for n in names} == before
    events = get_json(kube_env, "events", "-n", "metallb-system")["items"]
    assert any(e["type"] == "Warning" and "overlap" in e["message"] for e in events)


def test_controller_catches_up_after_apiserver_outage(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, run_controller: Callable[[], RunningController]
) -> None:
    kube_env.kubectl("apply", "-f", "-", input=pool("lab", "192.0.2.40-192.0.2.40"))
    running = run_controller()
    kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, "first"))
    assert wait_for(lambda: ingress(kube_env, lb_namespace, "first"), what="first's address") == ["192.0.2.40"]
    kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, "second"))
    reconnects_before = running.controller.services.reconnects

    kube_env.restart_apiserver(down_for=3.0)
    # Changes made as soon as the server is back, while the controller's watches are still reconnecting.
    kube_env.kubectl("delete", "service", "-n", lb_namespace, "first")
    kube_env.kubectl("apply", "-f", "-", input=pool("lab", "192.0.2.40-192.0.2.41"))
    kube_env.kubectl("apply", "-f", "-", input=service(lb_namespace, "third"))

    assigned = wait_for(
        lambda: sorted(ingress(kube_env, lb_namespace, "second") + ingress(kube_env, lb_namespace, "third")),
        what="second and third assigned after the outage",
    )
    wait_for(lambda: len(sorted(ingress(kube_env, lb_namespace, "second") + ingress(kube_env, lb_namespace, "third")))
             == 2, what="both assigned")
    assigned = sorted(ingress(kube_env, lb_namespace, "second") + ingress(kube_env, lb_namespace, "third"))
    assert assigned == ["192.0.2.40", "192.0.2.41"]
    assert running.controller.services.reconnects > reconnects_before
    assert running.thread.is_alive()


def test_memberlist_secret_is_created_once_and_then_left_alone(
    kube_env: KubeEnv, metallb_namespace: str, run_controller: Callable[..., RunningController]
) -> None:
    kube_env.kubectl("delete", "secret", "ml-test", "-n", metallb_namespace, check=False)

    def secret_key() -> str | None:
        found = kube_env.kubectl("get", "secret", "ml-test", "-n", metallb_namespace, "-o", "json", check=False)
        return base64.b64decode(orjson.loads(found.stdout)["data"]["secretkey"]).decode() if found.returncode == 0 \
            else None

    running = run_controller(memberlist_secret="ml-test")
    key = wait_for(secret_key, what="the memberlist secret")
    assert len(key) == 22 and len(base64.b64decode(key + "==")) == 16  # 16 random bytes, unpadded base64
    # Another controller (a restart, a rollout) finds it and leaves it: the speakers keep agreeing on the key.
    assert ensure_memberlist_secret(running.client, metallb_namespace, "ml-test", None) is False
    assert secret_key() == key
    kube_env.kubectl("delete", "secret", "ml-test", "-n", metallb_namespace, check=False)


def test_a_deleted_pool_loses_its_allocator_series(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, run_controller: Callable[[], RunningController]
) -> None:
    def series(pool_name: str) -> tuple[float | None, float | None]:
        labels = {"pool": pool_name}
        return (metrics.REGISTRY.get_sample_value("metallb_allocator_addresses_in_use_total", labels),
                metrics.REGISTRY.get_sample_value("metallb_allocator_addresses_total", labels))

    kube_env.kubectl("apply", "-f", "-", input=pool("kept", "192.0.2.50/31") + "---\n" + pool("going", "192.0.2.60/30"))
    run_controller()
    in_going = service(lb_namespace, "web", annotations="{metallb.io/address-pool: going}")
    kube_env.kubectl("apply", "-f", "-", input=in_going)
    wait_for(lambda: series("going") == (1.0, 4.0), what="the series of pool going")
    assert series("kept") == (0.0, 2.0)

    kube_env.kubectl("delete", "ipaddresspool", "-n", metallb_namespace, "going")
    # MetalLB deletes a deleted pool's series; the other pool's stay.
    wait_for(lambda: series("going") == (None, None), what="pool going's series deleted")
    assert series("kept") == (0.0, 2.0)
