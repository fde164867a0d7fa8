"""The controller never writes a decision onto a newer version of the Service than the one it decided on.

A status write lands on whatever the Service is by then. Without a precondition, a Service changed between the
decision and the write (here: its sharing key and port, so the address it was given may no longer be shared)
would show that address under its new key: two Services holding one address they may not share, written by the
controller. MetalLB's status update carries the resourceVersion; so does ours, and a refused write waits for the
newer version's own decision.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from metallb_fast.controller import loop
from metallb_fast.controller.decide import Decision
from metallb_fast.k8s.client import Json, KubeClient
from metallb_fast.k8s.informer import Informer, Resource
from metallb_fast.lab.waiting import wait_for
from metallb_fast.resources import Service
from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.controller_harness import RunningController, ingress, pool, service


def shared(namespace: str, name: str, key: str, port: int) -> str:
    return service(namespace, name, port, annotations=f"{{metallb.io/allow-shared-ip: {key}}}")


def test_a_service_changed_while_its_decision_is_written_never_shows_an_unshareable_address(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, monkeypatch: pytest.MonkeyPatch,
    run_controller: Callable[[], RunningController],
) -> None:
    seen: list[Json] = []  # every version of every Service of the namespace, as a watch delivers them
    admin = KubeClient.from_kubeconfig(str(kube_env.kubeconfig_path("admin")))
    recorder = Informer(admin, Resource("/api/v1", "services", namespace=lb_namespace),
                        lambda _type, obj: seen.append(obj), name="recorder")
    recorder.start()
    kube_env.kubectl("apply", "-f", "-", input=pool("race", "192.0.2.220/31"))
    kube_env.kubectl("apply", "-f", "-", input=shared(lb_namespace, "a", "k1", 80))

    real_decide = loop.decide
    raced = threading.Event()

    def decide_then_change(allocator: Any, service: Service, lb_class: str | None = None) -> Decision:
        decision = real_decide(allocator, service, lb_class)
        if service.name == "b" and decision.ingress_ips and not raced.is_set():
            raced.set()  # b was given a's address under k1; before the write lands, b moves to k2 on a's port
            kube_env.kubectl("apply", "-f", "-", input=shared(lb_namespace, "b", "k2", 80))
        return decision

    monkeypatch.setattr(loop, "decide", decide_then_change)
    try:
        run_controller()
        assert wait_for(lambda: ingress(kube_env, lb_namespace, "a"), what="a's address") == ["192.0.2.220"]
        kube_env.kubectl("apply", "-f", "-", input=shared(lb_namespace, "b", "k1", 443))
        wait_for(raced.is_set, what="the change racing b's write")
        assert wait_for(lambda: ingress(kube_env, lb_namespace, "b"), what="b's address") == ["192.0.2.221"]

        def b_versions() -> list[tuple[str, list[str]]]:
            versions = []
            for obj in seen:
                if obj["metadata"]["name"] == "b":
                    key = obj["metadata"].get("annotations", {}).get("metallb.io/allow-shared-ip", "")
                    ips = [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
                    versions.append((key, ips))
            return versions

        wait_for(lambda: ("k2", ["192.0.2.221"]) in b_versions(), what="the watch to deliver b's last version")
        # Under k2 (port 80, as a's), b never holds a's address: first nothing, then its own.
        assert [ips for key, ips in b_versions() if key == "k2"] == [[], ["192.0.2.221"]]
    finally:
        recorder.stop()
        admin.close()
