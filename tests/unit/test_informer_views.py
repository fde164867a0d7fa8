"""Lean informer caches: parsed views stored, an update no decision can see reaches no handler."""

from __future__ import annotations

from typing import Any

from metallb_fast.k8s.informer import EventType, Informer, Resource
from metallb_fast.resources import Node


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
