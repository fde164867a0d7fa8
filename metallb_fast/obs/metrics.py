"""Prometheus metrics under MetalLB's names, so existing dashboards and alerts keep working."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# MetalLB (Go) exports no *_created series; neither do we.
disable_created_metrics()

REGISTRY = CollectorRegistry()

# controller (MetalLB: internal/allocator)
addresses_in_use = Gauge(
    "metallb_allocator_addresses_in_use_total",
    "Number of IP addresses in use, per pool",
    ["pool"],
    registry=REGISTRY,
)
addresses_total = Gauge(
    "metallb_allocator_addresses_total",
    "Number of usable IP addresses, per pool",
    ["pool"],
    registry=REGISTRY,
)

_exported_pools: set[str] = set()


def export_pool_addresses(pools: Mapping[str, tuple[int, int]]) -> None:
    """Set both allocator series of every pool, by name: (addresses in use, usable addresses); the series of a
    pool no longer configured are deleted, as MetalLB deletes them when the pool goes."""
    for name in _exported_pools - pools.keys():
        addresses_in_use.remove(name)
        addresses_total.remove(name)
    for name, (in_use, total) in pools.items():
        addresses_in_use.labels(pool=name).set(in_use)
        addresses_total.labels(pool=name).set(total)
    _exported_pools.clear()
    _exported_pools.update(pools)


# both programs (MetalLB: internal/k8s)
config_loaded = Gauge(
    "metallb_k8s_client_config_loaded_bool",
    "1 if the metallb configuration was loaded at least once",
    registry=REGISTRY,
)
config_stale = Gauge(
    "metallb_k8s_client_config_stale_bool",
    "1 if running on a stale configuration, because the latest config failed to load",
    registry=REGISTRY,
)
updates = Counter(
    "metallb_k8s_client_updates_total", "Number of k8s object updates processed", registry=REGISTRY
)
update_errors = Counter(
    "metallb_k8s_client_update_errors_total", "Number of k8s object updates that failed", registry=REGISTRY
)

# speaker layer 2 (MetalLB: internal/layer2); the counters are mirrored from the fast path's own counters
layer2_requests = Gauge(
    "metallb_layer2_requests_received",
    "Number of layer2 requests received for owned IPs",
    ["ip"],
    registry=REGISTRY,
)
layer2_responses = Gauge(
    "metallb_layer2_responses_sent",
    "Number of layer2 responses sent for owned IPs",
    ["ip"],
    registry=REGISTRY,
)
# A Gauge used as a counter: prometheus_client would export a Counter as "..._sent_total", and dashboards
# written for MetalLB query "metallb_layer2_gratuitous_sent".
layer2_gratuitous = Gauge(
    "metallb_layer2_gratuitous_sent",
    "Number of gratuitous layer2 packets sent for owned IPs",
    ["ip"],
    registry=REGISTRY,
)
layer2_declined = Gauge(
    "metallb_fast_layer2_requests_declined",
    "Frames seen by the fast path and not answered, by reason",
    ["reason"],
    registry=REGISTRY,
)


class MembershipCollector:
    """Memberlist figures read at scrape time from a snapshot the membership loop publishes (never from the live
    state machine, which only its own thread touches). `source` returns None while memberlist is off."""

    def __init__(self, source: Callable[[], MembershipFigures | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        figures = self.source()
        if figures is None:
            return
        members = GaugeMetricFamily("metallb_memberlist_members", "Known memberlist members by state", labels=["state"])
        for state, count in sorted(figures.members_by_state.items()):
            members.add_metric([state], count)
        yield members
        rtt = GaugeMetricFamily("metallb_memberlist_probe_rtt_seconds",
                                "Round-trip time of recent answered probes (quantiles of the last samples)",
                                labels=["quantile"])
        for quantile, value in figures.rtt_quantiles.items():
            rtt.add_metric([quantile], value)
        yield rtt
        suspicions = CounterMetricFamily("metallb_memberlist_suspicions", "Suspicions raised by our failed probes, "
                                         "and suspects that refuted", labels=["outcome"])
        suspicions.add_metric(["raised"], figures.suspicions_raised)
        suspicions.add_metric(["refuted"], figures.suspicions_refuted)
        yield suspicions
        yield CounterMetricFamily("metallb_memberlist_refutations", "Accusations about this member it refuted",
                                  value=figures.refutations)
        messages = CounterMetricFamily("metallb_memberlist_messages", "Memberlist messages by direction and type",
                                       labels=["direction", "type"])
        for (direction, kind), count in sorted(figures.messages.items()):
            messages.add_metric([direction, kind], count)
        yield messages
        rejected = CounterMetricFamily("metallb_memberlist_rejected", "Packets and streams refused, by reason "
                                       "(decrypt-failed: another secret key)", labels=["reason"])
        for reason, count in sorted(figures.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily("metallb_memberlist_health_score", "Lifeguard local health (0 = healthy)",
                                value=figures.health_score)


@dataclass(frozen=True)
class MembershipFigures:
    members_by_state: Mapping[str, int]
    rtt_quantiles: Mapping[str, float]
    suspicions_raised: int
    suspicions_refuted: int
    refutations: int
    messages: Mapping[tuple[str, str], int]
    rejected: Mapping[str, int]
    health_score: int


_membership = MembershipCollector(lambda: None)
REGISTRY.register(_membership)


def watch_membership(source: Callable[[], MembershipFigures | None]) -> None:
    """Export this program's memberlist figures (one membership per program: a later call replaces it)."""
    _membership.source = source
