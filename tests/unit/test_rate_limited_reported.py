"""RATE_LIMITED reaches what operators read: the speaker's declined metric and `respond`'s counters."""

from __future__ import annotations

import io
from ipaddress import IPv4Address
from typing import Any

import urllib3

from metallb_fast.commands.respond import print_stats
from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.base import ResponderStats, Verdict
from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.connection import Connection
from metallb_fast.obs import metrics
from metallb_fast.speaker.loop import Speaker, SpeakerOptions

VIP = IPv4Address("192.0.2.10")


def limited_stats() -> ResponderStats:
    return ownership.stats("stand-in", [(VIP, "eth0")], {}, {Verdict.RATE_LIMITED: 7, Verdict.NOT_OWNED: 2})


class LimitedResponder:
    backend = "stand-in"

    def sync(self, owned: Any) -> None: ...

    def stats(self) -> ResponderStats:
        return limited_stats()

    def close(self, keep_serving: bool = False) -> None: ...


def test_the_speaker_exports_rate_limited_as_a_decline_reason() -> None:
    # read at scrape time: no loop has run
    never_called = KubeClient(Connection("https://127.0.0.1:9", urllib3.PoolManager()))
    Speaker(never_called, LimitedResponder(), SpeakerOptions(node_name="node-a"))  # type: ignore[arg-type]
    value = metrics.REGISTRY.get_sample_value("metallb_fast_layer2_requests_declined", {"reason": "rate_limited"})
    assert value == 7


def test_respond_prints_rate_limited() -> None:
    owned = {(VIP, "eth0"): bytes(6)}
    text, document = io.StringIO(), io.StringIO()
    print_stats(limited_stats(), owned, text, as_json=False)
    print_stats(limited_stats(), owned, document, as_json=True)
    assert "declined: not_owned=2, rate_limited=7" in text.getvalue()
    assert '"rate_limited":7' in document.getvalue()
