"""The informer against a real API server: list, watch, and catching up after the server went away."""

from __future__ import annotations

import threading
from typing import Any

from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.informer import EventType, Informer, Resource
from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv


def configmap(kube_env: KubeEnv, namespace: str, name: str, value: str) -> None:
    kube_env.kubectl("create", "configmap", name, "-n", namespace, f"--from-literal=v={value}", "--save-config")


def test_informer_sees_every_change_including_across_an_apiserver_restart(
    kube_env: KubeEnv, kube_namespace: str
) -> None:
    for i in range(3):
        configmap(kube_env, kube_namespace, f"before-{i}", str(i))
    events: list[tuple[EventType, str]] = []
    lock = threading.Lock()

    def handler(event_type: EventType, obj: dict[str, Any]) -> None:
        with lock:
            events.append((event_type, obj["metadata"]["name"]))

    client = KubeClient.from_kubeconfig(str(kube_env.kubeconfig_path("admin")))
    informer = Informer(client, Resource("/api/v1", "configmaps", namespace=kube_namespace), handler, page_size=2)
    informer.start()
    try:
        assert informer.synced.wait(20)
        # Paged list (page size 2): all three, each announced once as ADDED.
        names = {obj["metadata"]["name"] for obj in informer.snapshot()}
        assert {"before-0", "before-1", "before-2"} <= names
        assert sorted(n for t, n in events if t is EventType.ADDED and n.startswith("before")) == [
            "before-0", "before-1", "before-2"
        ]

        configmap(kube_env, kube_namespace, "during-watch", "x")
        wait_for(lambda: informer.get(f"{kube_namespace}/during-watch"), what="watch ADDED")

        kube_env.restart_apiserver(down_for=2.0)
        # Changes made right after the restart, while the informer is reconnecting (it may resume its watch or,
        # when the new server's watch cache no longer has its resourceVersion, get 410 Gone and relist).
        kube_env.kubectl("delete", "configmap", "before-1", "-n", kube_namespace)
        configmap(kube_env, kube_namespace, "after-restart", "y")
        kube_env.kubectl("patch", "configmap", "before-2", "-n", kube_namespace, "-p", '{"data":{"v":"changed"}}')

        wait_for(lambda: informer.get(f"{kube_namespace}/after-restart"), what="ADDED after the restart")
        wait_for(lambda: informer.get(f"{kube_namespace}/before-1") is None, what="deletion after the restart")
        wait_for(
            lambda: (informer.get(f"{kube_namespace}/before-2") or {}).get("data", {}).get("v") == "changed",
            what="modification after the restart",
        )
        with lock:
            assert (EventType.DELETED, "before-1") in events
            assert (EventType.MODIFIED, "before-2") in events
        assert informer.reconnects + informer.relists >= 2  # it did lose the server, and came back on its own
    finally:
        informer.stop()
        client.close()
