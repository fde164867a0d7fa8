"""The speaker program: watch Services, Nodes, EndpointSlices and the config; elect, program the fast path,
send gratuitous announcements, write ServiceL2Status and events.

Watch threads only enqueue. One reconcile thread recomputes this node's whole plan (pure: speaker.layer2) from the
caches, hands the `owned` table to the responder in one sync() call, and wakes at least every second to keep the
fast path's liveness deadline ahead of now: if this loop ever hangs, the kernel stops answering on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from metallb_fast.dataplane.base import Owned, OwnedKey, Responder
from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.k8s.configsource import ConfigSource, ConfigStateTarget
from metallb_fast.k8s.informer import EventType, Informer, Resource, retry_until_stopped, wait_synced
from metallb_fast.k8s.pods import pod_ips
from metallb_fast.k8s.writers import EventRecorder, LatestStateWriter, ObjectRef, ServiceL2StatusWriter
from metallb_fast.membership.settings import MembershipSettings
from metallb_fast.membership.swim import MemberEvent
from metallb_fast.obs import metrics
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.speaker import announce, layer2, status
from metallb_fast.speaker.cluster_view import Assessment, ClusterView
from metallb_fast.speaker.links import read_links
from metallb_fast.vocabulary import CORE_V1_PATH, DEFAULT_NAMESPACE, DISCOVERY_GROUP_PATH, class_matches

log = logging.getLogger(__name__)

WAKE = "wake"


@dataclass
class SpeakerOptions:
    node_name: str
    namespace: str = DEFAULT_NAMESPACE
    lb_class: str | None = None
    ignore_exclude_lb: bool = False
    liveness_timeout_s: float = 10.0
    gratuitous: announce.GratuitousPolicy = field(default_factory=announce.GratuitousPolicy)
    exclusion: layer2.InterfaceExclusion = field(default_factory=layer2.InterfaceExclusion)
    links_refresh_s: float = 10.0  # MetalLB rescans interfaces every 10 s
    membership: MembershipSettings | None = None  # None: memberlist off, candidates = Ready Nodes
    on_sigterm: str = "auto"  # auto | handover | restart (see Speaker._hands_over)


def endpoint_slice_resource(client: KubeClient) -> Resource:
    """discovery.k8s.io/v1 where served (1.21+), else v1beta1 (1.17-1.24)."""
    for version in ("v1", "v1beta1"):
        if client.served(f"{DISCOVERY_GROUP_PATH}/{version}"):
            return Resource(f"{DISCOVERY_GROUP_PATH}/{version}", "endpointslices")
    raise RuntimeError("the API server serves no discovery.k8s.io EndpointSlice version (v1 or v1beta1)")


def pod_owner_reference() -> Json | None:
    """ServiceL2Status objects are owned by the speaker's Pod (downward API env), so they vanish with it."""
    name, uid = os.environ.get("METALLB_POD_NAME"), os.environ.get("METALLB_POD_UID")
    if not name or not uid:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}


class Speaker:
    def __init__(self, client: KubeClient, responder: Responder, options: SpeakerOptions) -> None:
        self.client = client
        self.responder = responder
        self.options = options
        self.recorder = EventRecorder(client, "metallb-speaker", host=options.node_name)
        self.queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self.services = Informer(client, Resource(CORE_V1_PATH, "services"), self._wake, name="services")
        self.nodes = Informer(client, Resource(CORE_V1_PATH, "nodes"), self._on_node, name="nodes")
        self.slices: Informer | None = None  # its API version is discovered in run(): the server may be down now
        self.config = ConfigSource(
            client,
            options.namespace,
            self._wake,
            self.recorder,
            ConfigStateTarget(f"speaker-{options.node_name}", "speaker", options.node_name),
        )
        self.l2_status = ServiceL2StatusWriter(client, options.namespace, options.node_name, pod_owner_reference())
        self._l2_writer: LatestStateWriter[dict[tuple[str, str], Json]] = LatestStateWriter(
            "servicel2status", self.l2_status.apply
        )
        self.owned: dict[OwnedKey, bytes] = {}
        self.announced: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._status_written: dict[tuple[str, str], Json] | None = None
        self._gratuitous = announce.GratuitousState()
        self._gratuitous_wake: float | None = None
        self._links: tuple[layer2.LinkInfo, ...] = ()
        self._links_read_at = -1e9
        self.reconciles = 0
        self._dirty = False
        self._service_cache: dict[str, tuple[str, Service]] = {}
        self._metric_ips: set[str] = set()
        self.view: ClusterView | None = None
        self._recheck_at: float | None = None

    def _start_membership(self) -> None:
        settings = self.options.membership
        if settings is None:
            log.info(
                "not starting fast dead node detection (memberlist): candidates are the Ready Nodes",
                extra={"op": "startup"},
            )
            return
        self.view = ClusterView(
            settings,
            self.options.node_name,
            lambda: pod_ips(self.client, settings.namespace, settings.labels),
            self.responder,
            lambda: self.queue.put(WAKE),
        )
        self.view.start()

    def _assess(self, nodes: Mapping[str, Node], now: float) -> Assessment:
        """The election's candidates and whether this node answers at all. Without memberlist: the Nodes whose
        Ready condition is True (so a dead node goes only after the node lifecycle controller's grace period,
        40 s by default, marks it NotReady), and always answering."""
        if self.view is not None:
            return self.view.assess(nodes, now)
        ready = frozenset(name for name, node in nodes.items() if node.condition_is_true("Ready"))
        return Assessment(ready, True, "memberlist off")

    def _wake(self, _: EventType, __: Json) -> None:
        self.queue.put(WAKE)

    def _on_node(self, event: EventType, obj: Json) -> None:
        # MetalLB re-joins the speakers when its own Node object changes (a node back from maintenance).
        if self.view is not None and (obj.get("metadata") or {}).get("name") == self.options.node_name:
            self.view.rejoin()
        self._wake(event, obj)

    def stop(self) -> None:
        self._stop.set()
        self.queue.put("")

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        slices_resource = retry_until_stopped(
            lambda: endpoint_slice_resource(self.client), self._stop, "discovering the EndpointSlice API", "startup"
        )
        if slices_resource is None:
            return
        self.slices = Informer(self.client, slices_resource, self._wake, name="endpointslices")
        self._start_membership()
        informers = (self.services, self.nodes, self.slices)
        for informer in informers:
            informer.start()
        self.config.start()
        try:
            if not wait_synced((*informers, *self.config.informers), self._stop.is_set):
                return
            log.info("caches synced", extra={"op": "startup", "node": self.options.node_name})
            self._loop()
        finally:
            self._shutdown(informers)

    def _shutdown(self, informers: tuple[Informer, ...]) -> None:
        """A handover (the node drained, cordoned or deleted; or --on-sigterm=handover): tell the other speakers
        we leave, stop answering at once (they take over), remove our ServiceL2Status objects. A restart (a
        rolling update: the new process follows at once): leave the fast path answering, say nothing to the
        peers, so that no address moves (the kernel keeps answering until the liveness deadline, which covers the
        restart; peers keep us a candidate while our heartbeats are answered)."""
        handover = self._hands_over()
        log.info("stopping", extra={"op": "shutdown", "handover": handover})
        if self.view is not None:
            self.view.stop(leave=handover)
        if handover or not self.owned:
            self.responder.sync({})
            self.responder.close()
        else:
            self.responder.close(keep_serving=True)
        for informer in informers:
            informer.stop()
        self.config.stop()
        if handover:
            self._l2_writer.submit({})
            if not self._l2_writer.flush(timeout=10.0):
                log.warning("could not remove this node's ServiceL2Status objects", extra={"op": "shutdown"})
        self._l2_writer.close(timeout=0)
        self.recorder.close()

    def _hands_over(self) -> bool:
        """Is this stop for good? --on-sigterm says so, or (auto) the Node says so: cordoned (kubectl drain),
        being deleted, or gone. Without memberlist there is nobody to keep a restart hitless for: hand over."""
        if self.options.on_sigterm != "auto":
            return self.options.on_sigterm == "handover"
        if self.view is None:
            return True
        try:  # the API server's word, not our cache: a cordon may be milliseconds old (kubectl drain, then stop)
            path = f"{CORE_V1_PATH}/nodes/{self.options.node_name}"
            node: Json | None = self.client.request("GET", path, timeout=2.0)
        except ApiError as error:
            node = None if error.status == 404 else self.nodes.get(self.options.node_name)
        if node is None:
            return True
        spec, meta = node.get("spec") or {}, node.get("metadata") or {}
        return bool(spec.get("unschedulable") or meta.get("deletionTimestamp"))

    def _loop(self) -> None:
        self._safe_reconcile()
        while not self._stop.is_set():
            now = time.monotonic()
            # The liveness deadline is refreshed at least four times per timeout: a short timeout (fast
            # failover when the loop dies) must not expire between two healthy wake-ups.
            wake_at = now + min(1.0, self.options.liveness_timeout_s / 4)
            for planned in (self._gratuitous_wake, self._recheck_at):
                if planned is not None:
                    wake_at = min(wake_at, planned)
            try:
                item = self.queue.get(timeout=max(0.0, wake_at - now))
            except queue.Empty:
                item = None
            if self._stop.is_set():
                return
            self._keep_alive()
            links_stale = time.monotonic() - self._links_read_at >= self.options.links_refresh_s
            recheck = self._recheck_at is not None and time.monotonic() >= self._recheck_at
            if item is None and not self._dirty and not links_stale and not recheck:
                self._safe_send_gratuitous()
                continue
            while True:  # coalesce a burst of watch events into one reconcile
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
            self._safe_reconcile()

    def _safe_reconcile(self) -> None:
        """A failed reconcile (a link that vanished under the fast path, a bug) is logged and retried on the
        next wake-up, a second later, with the links read again; it never ends the loop."""
        try:
            self._reconcile()
        except Exception as error:
            metrics.update_errors.inc()
            self._dirty = True
            self._links_read_at = -1e9
            log.error("reconcile failed, retrying: %s", error, exc_info=True, extra={"op": "reconcile"})
        else:
            self._dirty = False

    def _safe_send_gratuitous(self) -> None:
        """The timer path of the gratuitous schedule: like a reconcile, a failure here is logged and never ends
        the loop (the next wake-up retries; the fast path keeps answering meanwhile)."""
        try:
            self._send_gratuitous()
        except Exception as error:
            metrics.update_errors.inc()
            log.error("gratuitous announcements failed: %s", error, exc_info=True, extra={"op": "gratuitous"})

    def _keep_alive(self) -> None:
        if self.view is not None and not self.view.settled:
            # A starting speaker may have adopted what its predecessor left answering: it lets that run on the
            # predecessor's deadline (a restart is hitless) but does not extend it until it knows the cluster
            # (after a crash the others may have taken those addresses over meanwhile).
            return
        deadline = time.monotonic_ns() + int(self.options.liveness_timeout_s * 1e9)
        self.responder.set_liveness_deadline(deadline)

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self) -> None:
        self.reconciles += 1
        metrics.updates.inc()
        self.config.reload()
        config = self.config.current
        now = time.monotonic()
        if now - self._links_read_at >= self.options.links_refresh_s:
            self._links = read_links()
            self._links_read_at = now
        if config is None:
            plan_owned: Owned = {}
            announced: list[layer2.ServiceAnnouncement] = []
            warnings: tuple[status.ServiceEvent, ...] = ()
        else:
            services = [s for s in self._parsed_services() if class_matches(s, self.options.lb_class)]
            nodes = {n.name: n for n in (Node.from_dict(obj) for obj in self.nodes.snapshot())}
            assessment = self._assess(nodes, now)
            self._recheck_at = assessment.recheck_at
            plan = layer2.plan_node(
                self.options.node_name,
                services,
                config,
                nodes,
                [EndpointSlice.from_dict(obj) for obj in self.slices.snapshot()] if self.slices else [],
                self._links,
                live_nodes=assessment.live,
                ignore_exclude_lb=self.options.ignore_exclude_lb,
                exclusion=self.options.exclusion,
            )
            plan_owned, announced, warnings = plan.owned, list(plan.announced), plan.warnings
            if not assessment.serving:  # split-brain rule: a minority withdraws everything (cluster_view.py)
                plan_owned, announced = {}, []
        self._keep_alive()
        if self.view is not None and not self.view.settled:
            # Still joining: alone, this node would elect itself for everything. Leave the fast path as it is
            # (empty, or what a previous process of this speaker left answering) and look again shortly.
            self._recheck_at = time.monotonic() + 0.1
            return
        change = self.view.last_change if self.view is not None else None
        if self.view is not None:
            self.view.last_change = None
        if plan_owned != self.owned:
            self.responder.sync(plan_owned)
            self._log_moves(self.owned, plan_owned, change)
            self.owned = dict(plan_owned)
        self._send_gratuitous()
        self._report(announced, warnings)
        self._update_metrics()

    def _log_moves(self, before: Mapping[OwnedKey, bytes], after: Owned, change: MemberEvent | None) -> None:
        """Announce/withdraw lines, naming membership as the reason when a membership change led to them."""
        reason = f"membership: {change.member.name} {change.kind} ({change.reason})" if change else "reconcile"
        gained = sorted(f"{ip}@{ifname}" for ip, ifname in after.keys() - before.keys())
        lost = sorted(f"{ip}@{ifname}" for ip, ifname in before.keys() - after.keys())
        if gained:
            log.info("announcing", extra={"op": "setBalancer", "addresses": gained, "reason": reason})
        if lost:
            log.info("withdrawing", extra={"op": "deleteBalancer", "addresses": lost, "reason": reason})
        log.info(
            "fast path synced",
            extra={"op": "syncDataplane", "owned": sorted(f"{ip}@{ifname}" for ip, ifname in after)},
        )

    def _parsed_services(self) -> list[Service]:
        """Services as views, re-parsed only when their resourceVersion changed: with thousands of Services a
        reconcile would otherwise spend most of its time decoding objects it has already seen."""
        cache: dict[str, tuple[str, Service]] = {}
        for obj in self.services.snapshot():
            meta = obj.get("metadata") or {}
            key, version = f"{meta.get('namespace')}/{meta.get('name')}", meta.get("resourceVersion") or ""
            cached = self._service_cache.get(key)
            cache[key] = cached if cached is not None and cached[0] == version else (version, Service.from_dict(obj))
        self._service_cache = cache
        return [service for _, service in cache.values()]

    def _send_gratuitous(self) -> None:
        result = announce.schedule(self._gratuitous, self.owned, time.monotonic(), self.options.gratuitous)
        self._gratuitous = result.state
        self._gratuitous_wake = result.wake_at
        for (address, interface), error in announce.announce_due(self.responder, result.due):
            log.warning("gratuitous %s on %s failed: %s", address, interface, error, extra={"op": "gratuitous"})
        for address, _ in result.due:
            metrics.layer2_gratuitous.labels(ip=str(address)).inc()

    def _report(
        self, announced: list[layer2.ServiceAnnouncement], warnings: tuple[status.ServiceEvent, ...]
    ) -> None:
        node = self.options.node_name
        now_announced = {a.service.key for a in announced}
        for event in status.node_assigned_events(self.announced, [a.service for a in announced], node):
            self._record(event)
        self.announced = now_announced
        warned = set()
        for event in warnings:
            key = (f"{event.namespace}/{event.service_name}", event.message)
            warned.add(key)
            if key not in self._warned:
                self._record(event)
        self._warned = warned
        desired = {
            (a.service.namespace, a.service.name): status.desired_l2_status(
                a.service, node, a.interfaces.listed, namespace=self.options.namespace
            )
            for a in announced
        }
        if desired != self._status_written:
            self._l2_writer.submit(desired)  # written (and retried) off this thread: see LatestStateWriter
            self._status_written = desired

    def _record(self, event: status.ServiceEvent) -> None:
        ref = ObjectRef("Service", event.namespace, event.service_name, event.service_uid)
        self.recorder.record(ref, event.type, event.reason, event.message)

    def _update_metrics(self) -> None:
        """MetalLB's per-IP series (summed over interfaces); an address no longer owned loses its series."""
        stats = self.responder.stats()
        per_ip: dict[str, tuple[int, int]] = {}
        for (address, _), counters in stats.per_address.items():
            requests, replies = per_ip.get(str(address), (0, 0))
            per_ip[str(address)] = (requests + counters.requests, replies + counters.replies)
        for ip, (requests, replies) in per_ip.items():
            metrics.layer2_requests.labels(ip=ip).set(requests)
            metrics.layer2_responses.labels(ip=ip).set(replies)
        for gone in self._metric_ips - per_ip.keys():
            for series in (metrics.layer2_requests, metrics.layer2_responses, metrics.layer2_gratuitous):
                with contextlib.suppress(KeyError):
                    series.remove(gone)
        self._metric_ips = set(per_ip)
        for verdict, count in stats.declined.items():
            metrics.layer2_declined.labels(reason=verdict.value).set(count)

