"""Prometheus metrics under MetalLB's names, so existing dashboards and alerts keep working.

One registry per program: `REGISTRY` is this process's (a program is one process; prometheus_client's global
default registry is never used). At import it holds what both programs export (MetalLB's k8s client families and
the process collector: CPU, memory, file descriptors); a program's own families join it when the program starts
them, so a speaker never lists the allocator's families and a controller never lists layer 2's:
  - the controller: the allocator gauges, on its first export_pool_addresses();
  - the speaker: watch_speaker() (layer 2 and metallb_speaker_announced) and watch_membership() (memberlist).

What the speaker's fast path counts is read at scrape time (SpeakerCollector calls the responder's stats()):
nothing copies counters on a timer, so a scrape sees the kernel's count of that moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metallb_fast.dataplane.base import ANSWERING, ResponderStats, Verdict

# MetalLB (Go) exports no *_created series; neither do we.
disable_created_metrics()

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ... as Go's

_lock = threading.Lock()
_registered: set[int] = set()


def _register(collector: Collector) -> None:
    """Add a program's collector to REGISTRY once (a second Speaker in one process, as in tests, reuses it)."""
    with _lock:
        if id(collector) not in _registered:
            REGISTRY.register(collector)
            _registered.add(id(collector))


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

# controller (MetalLB: internal/allocator); registered on the controller's first export
addresses_in_use = Gauge(
    "metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool", ["pool"], registry=None
)
addresses_total = Gauge(
    "metallb_allocator_addresses_total", "Number of usable IP addresses, per pool", ["pool"], registry=None
)

_exported_pools: set[str] = set()


def export_pool_addresses(pools: Mapping[str, tuple[int, int]]) -> None:
    """Set both allocator series of every pool, by name: (addresses in use, usable addresses); the series of a
    pool no longer configured are deleted, as MetalLB deletes them when the pool goes."""
    _register(addresses_in_use)
    _register(addresses_total)
    for name in _exported_pools - pools.keys():
        addresses_in_use.remove(name)
        addresses_total.remove(name)
    for name, (in_use, total) in pools.items():
        addresses_in_use.labels(pool=name).set(in_use)
        addresses_total.labels(pool=name).set(total)
    _exported_pools.clear()
    _exported_pools.update(pools)


# ---- speaker: layer 2 (MetalLB: internal/layer2/stats.go) and announcements (MetalLB: speaker/main.go) ----------

LAYER2_REQUESTS = "metallb_layer2_requests_received"
LAYER2_RESPONSES = "metallb_layer2_responses_sent"
LAYER2_GRATUITOUS = "metallb_layer2_gratuitous_sent"
LAYER2_DECLINED = "metallb_fast_layer2_requests_declined"
SPEAKER_ANNOUNCED = "metallb_speaker_announced"


@dataclass(frozen=True)
class Announced:
    """One address of a Service this node announces (a metallb_speaker_announced series)."""

    service: str  # namespace/name, as MetalLB labels it
    ip: str
    protocol: str = "layer2"


@dataclass(frozen=True)
class SpeakerFigures:
    """What the speaker's collector reads at scrape time: the fast path's counters (stats() is called then), the
    gratuitous frames the speaker sent, and the announcements of its last reconcile."""

    node: str
    stats: Callable[[], ResponderStats]
    gratuitous: Mapping[str, int]  # ip -> frames sent while it has been owned
    announced: tuple[Announced, ...]


def _untyped(name: str, documentation: str) -> Metric:
    """A family with MetalLB's exact name. Its counters carry no `_total` (Go's client adds none), and
    prometheus_client writes a counter's TYPE line as `<name>_total`, which would rename the series of every
    dashboard written for MetalLB: typed `untyped` instead, which rate() and increase() read as they read a counter."""
    return Metric(name, documentation, "unknown")


def layer2_families(figures: SpeakerFigures, stats: ResponderStats) -> Iterator[Metric]:
    """MetalLB's per-IP layer-2 series (summed over the interfaces an address is answered on) and our
    declined-by-reason series, one sample per reason the Verdict enum names (so a reason never seen reads 0)."""
    requests = _untyped(LAYER2_REQUESTS, "Number of layer2 requests received for owned IPs")
    responses = _untyped(LAYER2_RESPONSES, "Number of layer2 responses sent for owned IPs in response to requests")
    per_ip: dict[str, tuple[int, int]] = {}
    for (address, _), counters in stats.per_address.items():
        received, sent = per_ip.get(str(address), (0, 0))
        per_ip[str(address)] = (received + counters.requests, sent + counters.replies)
    for ip, (received, sent) in sorted(per_ip.items()):
        requests.add_sample(LAYER2_REQUESTS, {"ip": ip}, received)
        responses.add_sample(LAYER2_RESPONSES, {"ip": ip}, sent)
    yield requests
    yield responses
    gratuitous = _untyped(
        LAYER2_GRATUITOUS, "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers"
    )
    for ip, count in sorted(figures.gratuitous.items()):
        gratuitous.add_sample(LAYER2_GRATUITOUS, {"ip": ip}, count)
    yield gratuitous
    declined = _untyped(LAYER2_DECLINED, "Frames seen by the fast path and not answered, by reason")
    for verdict in Verdict:  # read at run time: backends gain reasons, each one a series at once
        if verdict not in ANSWERING:
            declined.add_sample(LAYER2_DECLINED, {"reason": verdict.value}, stats.declined.get(verdict, 0))
    yield declined


def announced_family(figures: SpeakerFigures) -> Metric:
    announced = GaugeMetricFamily(
        SPEAKER_ANNOUNCED,
        "Services being announced from this node. This is desired state, it does not guarantee that the routing "
        "protocols have converged.",
        labels=["ip", "node", "protocol", "service"],  # Go's client writes labels sorted by name
    )
    for item in sorted(figures.announced, key=lambda a: (a.service, a.ip)):
        announced.add_metric([item.ip, figures.node, item.protocol, item.service], 1)
    return announced


class SpeakerCollector:
    """The speaker's families, read at scrape time from `source` (None while no speaker runs). A failing
    stats() (the responder closing under a scrape) costs that scrape the layer-2 families, not the others."""

    def __init__(self) -> None:
        self.source: Callable[[], SpeakerFigures | None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.source()
            stats = figures.stats() if figures is not None else None
        except Exception as error:  # the fast path is the speaker's to report; a scrape must still answer
            log.warning("reading the speaker's figures for a scrape failed: %s", error, extra={"op": "metrics"})
            return
        if figures is None or stats is None:
            return
        yield announced_family(figures)
        yield from layer2_families(figures, stats)


_speaker = SpeakerCollector()


def watch_speaker(source: Callable[[], SpeakerFigures | None]) -> None:
    """Export this program's speaker families (one speaker per program: a later call replaces the source)."""
    _speaker.source = source
    _register(_speaker)


def unwatch_speaker(source: Callable[[], SpeakerFigures | None]) -> None:
    """A stopped speaker's families go (unless another speaker has replaced its source meanwhile)."""
    if _speaker.source == source:
        _speaker.source = lambda: None


# ---- speaker: memberlist (MetalLB exports none: hashicorp/memberlist's go-metrics are not wired to Prometheus) ---


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


_membership = MembershipCollector(lambda: None)


def watch_membership(source: Callable[[], MembershipFigures | None]) -> None:
    """Export this program's memberlist figures (one membership per program: a later call replaces it)."""
    _membership.source = source
    _register(_membership)
