"""What a scrape of the speaker shows: the fast path's counters as they are at that moment (no loop copies them),
every decline reason the Verdict enum names, metallb_speaker_announced as MetalLB labels it, process metrics; and
each program's registry holds only its own families."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address
from typing import Any

import urllib3
from prometheus_client import generate_latest

from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.base import ANSWERING, AddressCounters, ResponderStats, Verdict
from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.connection import Connection
from metallb_fast.obs import metrics
from metallb_fast.speaker.layer2 import InterfaceChoice, ServiceAnnouncement, ServicePlan
from metallb_fast.speaker.loop import Speaker, SpeakerOptions
from metallb_fast.speaker.planbook import PlanChange
from tests.unit.speaker_builders import make_service

VIP = IPv4Address("192.0.2.10")


class CountingResponder:
    """A fast path whose counters move between scrapes, counting how often they are read."""

    backend = "stand-in"

    def __init__(self) -> None:
        self.requests = 0
        self.reads = 0

    def sync(self, owned: Any) -> None: ...

    def stats(self) -> ResponderStats:
        self.reads += 1
        counters = {(VIP, "eth0"): AddressCounters(self.requests, self.requests - 1),
                    (VIP, "eth1"): AddressCounters(1, 1)}
        return ownership.stats("stand-in", list(counters), counters, {Verdict.NOT_OWNED: 4})

    def close(self, keep_serving: bool = False) -> None: ...


def speaker(responder: Any) -> Speaker:
    never_called = KubeClient(Connection("https://127.0.0.1:9", urllib3.PoolManager()))
    return Speaker(never_called, responder, SpeakerOptions(node_name="node-a"))


def value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_counters_are_read_from_the_fast_path_at_scrape_time() -> None:
    responder = CountingResponder()
    running = speaker(responder)
    try:
        responder.requests = 10
        assert value("metallb_layer2_requests_received", ip=str(VIP)) == 11  # summed over eth0 and eth1
        assert value("metallb_layer2_responses_sent", ip=str(VIP)) == 10
        responder.requests = 25
        assert value("metallb_layer2_requests_received", ip=str(VIP)) == 26
        reads = responder.reads
        generate_latest(metrics.REGISTRY)
        assert responder.reads == reads + 1  # one stats() call per scrape
    finally:
        metrics.unwatch_speaker(running.metric_figures)
    assert value("metallb_layer2_requests_received", ip=str(VIP)) is None  # a stopped speaker exports nothing


def test_every_decline_reason_has_a_series() -> None:
    running = speaker(CountingResponder())
    try:
        reasons = {v.value for v in Verdict if v not in ANSWERING}
        for reason in reasons:
            assert value("metallb_fast_layer2_requests_declined", reason=reason) == (4 if reason == "not_owned" else 0)
        text = generate_latest(metrics.REGISTRY).decode()
        # MetalLB's names exactly (no _total added), and no created series
        assert "# TYPE metallb_layer2_requests_received untyped" in text
        assert "_created" not in text
    finally:
        metrics.unwatch_speaker(running.metric_figures)


def announcement_change(key: str, before: tuple[str, ...], after: tuple[str, ...] | None) -> PlanChange:
    def plan(ips: tuple[str, ...]) -> ServicePlan:
        service = make_service(key.split("/")[1], ips, namespace=key.split("/")[0])
        addresses = tuple(IPv4Address(ip) for ip in ips)
        return ServicePlan({}, ServiceAnnouncement(service, addresses, InterfaceChoice(True)), (), None)

    withdrawn = ServicePlan({}, None, (), "notOwner")
    return PlanChange(key, plan(before) if before else None, plan(after) if after else withdrawn)


def test_announced_services_and_their_log_lines(caplog: Any) -> None:
    running = speaker(CountingResponder())
    running._status_serving = True
    try:
        with caplog.at_level("INFO"):
            running._announcement_moved(announcement_change("shop/web", (), ("192.0.2.10",)))
        assert value("metallb_speaker_announced", ip="192.0.2.10", node="node-a", protocol="layer2",
                     service="shop/web") == 1
        announced = [r for r in caplog.records if getattr(r, "event", None) == "serviceAnnounced"]
        assert [(r.getMessage(), r.ips, r.protocol) for r in announced] == [  # type: ignore[attr-defined]
            ("service has IP, announcing", ["192.0.2.10"], "layer2")]
        caplog.clear()
        with caplog.at_level("INFO"):
            running._announcement_moved(announcement_change("shop/web", ("192.0.2.10",), ("192.0.2.11",)))
            running._announcement_moved(announcement_change("shop/web", ("192.0.2.11",), None))
        events = [(r.event, r.reason if r.event == "serviceWithdrawn" else None)  # type: ignore[attr-defined]
                  for r in caplog.records if hasattr(r, "event")]
        assert events == [("serviceWithdrawn", "loadBalancerIPChanged"), ("serviceAnnounced", None),
                          ("serviceWithdrawn", "notOwner")]
        assert value("metallb_speaker_announced", ip="192.0.2.11", node="node-a", protocol="layer2",
                     service="shop/web") is None
    finally:
        metrics.unwatch_speaker(running.metric_figures)


def test_a_scrape_survives_a_failing_fast_path() -> None:
    class Broken(CountingResponder):
        def stats(self) -> ResponderStats:
            raise OSError("map closed")

    running = speaker(Broken())
    try:
        text = generate_latest(metrics.REGISTRY).decode()
        assert "metallb_k8s_client_updates_total" in text and "metallb_layer2_requests_received" not in text
    finally:
        metrics.unwatch_speaker(running.metric_figures)


def test_each_program_exports_its_own_families() -> None:
    script = (
        "from prometheus_client import REGISTRY as DEFAULT, generate_latest\n"
        "from metallb_fast.obs import metrics\n"
        "speaker_only = generate_latest(metrics.REGISTRY).decode()\n"
        "metrics.export_pool_addresses({'default': (1, 4)})\n"
        "controller = generate_latest(metrics.REGISTRY).decode()\n"
        "print('allocator' in speaker_only, 'metallb_allocator_addresses_total{pool=\"default\"} 4.0' in controller,"
        " 'process_resident_memory_bytes' in controller, 'metallb_' in generate_latest(DEFAULT).decode())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "False"]
