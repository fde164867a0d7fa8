"""The speaker's EndpointSlice index: each slice under the Service it belongs to, also when its label moves."""

from __future__ import annotations

from typing import Any

import urllib3

from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.connection import Connection
from metallb_fast.k8s.informer import EventType
from metallb_fast.resources import Endpoint, EndpointSlice
from metallb_fast.speaker.loop import Speaker, SpeakerOptions


class NoResponder:
    backend = "stand-in"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the index must not touch the responder ({name})")


def piece(name: str, service: str, node: str) -> EndpointSlice:
    return EndpointSlice("shop", name, service, (Endpoint(node, True, None),))


def test_slices_follow_their_service_label() -> None:
    client = KubeClient(Connection("https://127.0.0.1:9", urllib3.PoolManager()))
    speaker = Speaker(client, NoResponder(), SpeakerOptions(node_name="n1"))  # type: ignore[arg-type]
    speaker._on_slice(EventType.ADDED, piece("web-a", "web", "n1"))
    speaker._on_slice(EventType.ADDED, piece("web-b", "web", "n2"))
    speaker._on_slice(EventType.MODIFIED, piece("web-a", "web", "n3"))
    assert sorted((s.name, s.endpoints[0].node_name) for s in speaker._slices_of["shop/web"]) == [
        ("web-a", "n3"),
        ("web-b", "n2"),
    ]
    speaker._on_slice(EventType.MODIFIED, piece("web-b", "api", "n2"))  # relabelled: moves to api
    assert [s.name for s in speaker._slices_of["shop/web"]] == ["web-a"]
    assert [s.name for s in speaker._slices_of["shop/api"]] == ["web-b"]
    assert speaker._dirty_services == {"shop/web", "shop/api"}
    speaker._on_slice(EventType.DELETED, piece("web-a", "web", "n3"))
    assert "shop/web" not in speaker._slices_of
    speaker.recorder.close()
