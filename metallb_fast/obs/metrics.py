"""Prometheus metrics under MetalLB's names, so existing dashboards and alerts keep working."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, start_http_server

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


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose /metrics on a background thread."""
    start_http_server(port, addr=address, registry=REGISTRY)
