"""Lean informer caches: parsed views stored, an update no decision can see reaches no handler."""

from __future__ import annotations

from typing import Any

from metallb_fast.k8s.informer import EventType, Informer, Resource
from metallb_fast.resources import EndpointSlice, Node, Service


def node(version: str, heartbeat: str, ready: str = "True", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "resourceVersion": version, "labels": labels, "managedFields": [{"big": "x" * 500}]},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]},
    }


def test_a_heartbeat_is_no_event_and_a_condition_change_is() -> None:
    seen: list[tuple[EventType, Node]] = []
    informer: Informer[Node] = Informer(
        None,  # type: ignore[arg-type]  # never started: events are fed by hand
        Resource("/api/v1", "nodes"),
        lambda event, view: seen.append((event, view)),
        parse=Node.from_dict,
    )
    informer._apply(EventType.ADDED, node("1", "t1"))
    informer._apply(EventType.MODIFIED, node("2", "t2"))
    informer._apply(EventType.MODIFIED, node("3", "t3", ready="False"))
    informer._apply(EventType.MODIFIED, node("4", "t4", ready="False", zone="a"))
    assert [event for event, _ in seen] == [EventType.ADDED, EventType.MODIFIED, EventType.MODIFIED]
    assert informer.unchanged == 1
    cached = informer.get("n1")
    assert isinstance(cached, Node) and cached.label_map == {"zone": "a"}
    assert informer.versions() == {"n1": "4"}  # the cache follows every version, handled or not
    informer._apply(EventType.MODIFIED, node("3", "t5"))  # older than what the cache holds: ignored
    assert informer.versions() == {"n1": "4"}
    informer._apply(EventType.DELETED, node("5", "t5"))
    assert informer.get("n1") is None and seen[-1][0] is EventType.DELETED


def test_a_write_we_made_is_kept_over_an_older_watch_event() -> None:
    informer: Informer[Node] = Informer(
        None,  # type: ignore[arg-type]
        Resource("/api/v1", "nodes"),
        lambda event, view: None,
        parse=Node.from_dict,
    )
    informer.remember_write(node("7", "t1", zone="b"))
    informer._apply(EventType.MODIFIED, node("6", "t0"))
    assert informer.versions() == {"n1": "7"}
    assert informer.get("n1") == Node.from_dict(node("7", "t1", zone="b"))


def service(version: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": version,
                     "creationTimestamp": "2026-12-02T10:00:00Z",
                     "annotations": {"metallb.io/ip-allocated-from-pool": "lan"}},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
    }
    for path, value in changes.items():
        section, field = path.split("__")
        body[section][field] = value
    return body


def test_the_speakers_service_view_ignores_what_only_the_controller_reads() -> None:
    """A new resourceVersion, cluster IP or selector is no event for the speaker; a new ingress address is."""
    from metallb_fast.speaker.loop import announcing_view

    seen: list[EventType] = []
    informer: Informer[Service] = Informer(
        None,  # type: ignore[arg-type]
        Resource("/api/v1", "services"),
        lambda event, view: seen.append(event),
        parse=announcing_view,
    )
    informer._apply(EventType.ADDED, service("1"))
    informer._apply(EventType.MODIFIED, service("2", spec__clusterIPs=["10.96.0.11"], spec__selector={"app": "x"}))
    moved = service("3", status__loadBalancer={"ingress": [{"ip": "192.0.2.11"}]})
    informer._apply(EventType.MODIFIED, moved)
    assert seen == [EventType.ADDED, EventType.MODIFIED] and informer.unchanged == 1
    view, full = informer.get("shop/web"), Service.from_dict(moved)
    assert view is not None and view.ingress_ips == ("192.0.2.11",)
    for field in ("uid", "annotations", "ports", "type", "external_traffic_policy", "ingress_ips"):
        assert getattr(view, field) == getattr(full, field), field
    assert (view.cluster_ips, view.selector, view.resource_version, view.creation_timestamp) == ((), (), "", "")
    assert full.cluster_ips == ("10.96.0.10",) and full.resource_version == "3"


def test_equal_values_of_many_views_are_one_object() -> None:
    """What thousands of Services and slices repeat (an annotation, a port, an endpoint on a node) is stored once."""
    first, second = Service.from_dict(service("1")), Service.from_dict(service("2"))
    assert first.annotations[0] is second.annotations[0] and first.ports[0] is second.ports[0]
    slices = [EndpointSlice.from_dict({"metadata": {"name": f"s{i}", "namespace": "shop"},
                                       "endpoints": [{"nodeName": "n1", "conditions": {"ready": True}}]})
              for i in range(2)]
    assert slices[0].endpoints[0] is slices[1].endpoints[0]
    unique = Service.from_dict(service("4", metadata__annotations={"note": "x" * 300}))
    assert unique.annotation_map == {"note": "x" * 300}  # a long value is kept as it is, not tabled
