"""The speaker program: watch Services, Nodes, EndpointSlices and the config; elect, program the fast path,
send gratuitous announcements, write ServiceL2Status and events.

Watch threads only mark what changed. One reconcile thread re-plans (pure: speaker.layer2.plan_service) only the
Services marked dirty: a Service event marks that Service, an EndpointSlice event the Service it belongs to. What
affects every Service (the config, the Node set, the live set from membership, the node's links) re-plans them
all, still without re-parsing any object: the informers cache parsed views. The plan is kept per Service
(speaker.planbook), the `owned` table goes to the responder in one sync() call when it changed, and the loop wakes
at least every second to keep the fast path's liveness deadline ahead of now: if this loop ever hangs, the kernel
stops answering on its own.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metallb_fast.config.model import Config
from metallb_fast.dataplane.base import Owned, OwnedKey, Responder
from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.k8s.configsource import ConfigSource, ConfigStateTarget
from metallb_fast.k8s.informer import EventType, Informer, Resource, retry_until_stopped, wait_synced
from metallb_fast.k8s.pods import pod_ips
from metallb_fast.k8s.writers import EventRecorder, LatestStateWriter, ObjectRef, ServiceL2StatusWriter
from metallb_fast.membership.settings import MembershipSettings
from metallb_fast.membership.swim import MemberEvent
from metallb_fast.obs import memory, metrics
from metallb_fast.obs.health import Health
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.speaker import announce, election, layer2, status
from metallb_fast.speaker.cluster_view import Assessment, ClusterView
from metallb_fast.speaker.exclusions import ExclusionFile
from metallb_fast.speaker.links import read_links
from metallb_fast.speaker.planbook import PlanBook, PlanChange
from metallb_fast.vocabulary import (
    ANNOTATION_IP_ALLOCATED_FROM_POOL,
    CORE_V1_PATH,
    DEFAULT_NAMESPACE,
    DISCOVERY_GROUP_PATH,
    class_matches,
)

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
    exclusion_file: Path | None = None  # the metallb-excludel2 ConfigMap's file; when set it replaces `exclusion`
    links_refresh_s: float = 10.0  # MetalLB rescans interfaces every 10 s
    membership: MembershipSettings | None = None  # None: memberlist off, candidates = Ready Nodes
    on_sigterm: str = "auto"  # auto | handover | restart (see Speaker._hands_over)


def announcing_view(obj: Json) -> Service:
    return Service.from_dict(obj, announcing=True)


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
    def __init__(
        self, client: KubeClient, responder: Responder, options: SpeakerOptions, health: Health | None = None
    ) -> None:
        self.client = client
        self.health = health or Health()
        # read before anything starts: an unusable file stops the speaker here (ExclusionError, named)
        self._exclusions = ExclusionFile.load(options.exclusion_file) if options.exclusion_file else None
        self.responder = responder
        self.options = options
        self.recorder = EventRecorder(client, "metallb-speaker", host=options.node_name)
        self.queue: queue.SimpleQueue[str] = queue.SimpleQueue()  # C: a watch event's wake-up costs microseconds
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards what the watch threads mark: the dirty set and the slice index
        self._dirty_services: set[str] = set()
        self._replan_all = True
        self._nodes_changed = True
        self._config_changed = True
        # Service key -> its slices (usually one: a tuple, not a dict per Service, at 10,000 Services)
        self._slices_of: dict[str, tuple[EndpointSlice, ...]] = {}
        self._slice_owner: dict[str, str] = {}  # slice key -> Service key
        self.services: Informer[Service] = Informer(
            client, Resource(CORE_V1_PATH, "services"), self._on_service, parse=announcing_view, name="services"
        )
        self.nodes: Informer[Node] = Informer(
            client, Resource(CORE_V1_PATH, "nodes"), self._on_node, parse=Node.from_dict, name="nodes"
        )
        self.slices: Informer[EndpointSlice] | None = None  # its API version is discovered in run()
        self.config = ConfigSource(
            client,
            options.namespace,
            self._on_config,
            self.recorder,
            ConfigStateTarget(f"speaker-{options.node_name}", "speaker", options.node_name),
        )
        self.l2_status = ServiceL2StatusWriter(client, options.namespace, options.node_name, pod_owner_reference())
        self._l2_writer: LatestStateWriter[dict[tuple[str, str], Json]] = LatestStateWriter(
            "servicel2status", self.l2_status.apply
        )
        self.owned: dict[OwnedKey, bytes] = {}
        self.book = PlanBook()
        self._synced: tuple[int, bool] | None = None  # (book revision, serving) of what the fast path holds
        self._owned_changed = True  # since the gratuitous schedule last looked at `owned`
        self._context: election.ElectionContext | None = None
        self._side: layer2.NodeSide | None = None
        self._assessment: Assessment | None = None
        self._assessed_nodes: Mapping[str, Node] | None = None
        self._l2_desired: dict[tuple[str, str], Json] = {}
        self._status_dirty = True
        self._status_serving: bool | None = None
        self._gratuitous = announce.GratuitousState()
        self._gratuitous_wake: float | None = None
        self._links: tuple[layer2.LinkInfo, ...] = ()
        self._links_read_at = -1e9
        self.reconciles = 0
        self._dirty = False
        # What the metrics collector reads at scrape time (obs/metrics.py), both under self._lock: the frames
        # sent per owned address, and the addresses of every Service this node announces.
        self._gratuitous_sent: dict[str, int] = {}
        self._announced: dict[str, tuple[metrics.Announced, ...]] = {}
        self.view: ClusterView | None = None
        self._recheck_at: float | None = None
        metrics.watch_speaker(self.metric_figures)

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
        if self._assessment is None or self._assessed_nodes is not nodes:  # the same map: the same answer
            ready = frozenset(name for name, node in nodes.items() if node.condition_is_true("Ready"))
            self._assessed_nodes = nodes
            return Assessment(ready, True, "memberlist off")
        return self._assessment

    def _on_service(self, _: EventType, service: Service) -> None:
        with self._lock:
            self._dirty_services.add(service.key)
        self.queue.put(WAKE)

    def _on_slice(self, event: EventType, endpoint_slice: EndpointSlice) -> None:
        slice_key = f"{endpoint_slice.namespace}/{endpoint_slice.name}"
        owner = sys.intern(endpoint_slice.service_key)

        def others(service: str) -> tuple[EndpointSlice, ...]:
            return tuple(s for s in self._slices_of.get(service, ()) if s.name != endpoint_slice.name)

        with self._lock:
            previous = self._slice_owner.pop(slice_key, None)
            if previous is not None:  # its Service label may have changed: the old Service loses it
                if remaining := others(previous):
                    self._slices_of[previous] = remaining
                else:
                    self._slices_of.pop(previous, None)
                self._dirty_services.add(previous)
            if event is not EventType.DELETED:
                self._slice_owner[slice_key] = owner
                self._slices_of[owner] = (*others(owner), endpoint_slice)
            self._dirty_services.add(owner)
        self.queue.put(WAKE)

    def _on_node(self, _: EventType, node: Node) -> None:
        # Only a change a decision sees gets here (the informer drops heartbeats); the reconcile finds which nodes
        # changed and re-plans the Services whose election they can move.
        # MetalLB re-joins the speakers when its own Node object changes (a node back from maintenance).
        if self.view is not None and node.name == self.options.node_name:
            self.view.rejoin()
        with self._lock:
            self._nodes_changed = True
        self.queue.put(WAKE)

    def _on_config(self, _: EventType, __: Json) -> None:
        with self._lock:
            self._config_changed = True
        self.queue.put(WAKE)

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
        self.slices = Informer(
            self.client, slices_resource, self._on_slice, parse=EndpointSlice.from_dict, name="endpointslices"
        )
        self._start_membership()
        informers = (self.services, self.nodes, self.slices)
        for informer in informers:
            informer.start()
        self.config.start()
        try:
            if not wait_synced((*informers, *self.config.informers), self._stop.is_set):
                return
            log.info("caches synced", extra={"op": "startup", "node": self.options.node_name})
            self._safe_reconcile()  # the first plan, before the start-up garbage is handed back
            memory.settle_after_startup()
            self._loop()
        finally:
            self.health.stopped("the speaker loop has ended")
            self._shutdown(informers)

    def _shutdown(self, informers: tuple[Informer[Any], ...]) -> None:
        """A handover (the node drained, cordoned or deleted; or --on-sigterm=handover): tell the other speakers
        we leave, stop answering at once (they take over), remove our ServiceL2Status objects. A restart (a
        rolling update: the new process follows at once): leave the fast path answering, say nothing to the
        peers, so that no address moves (the kernel keeps answering until the liveness deadline, which covers the
        restart; peers keep us a candidate while our heartbeats are answered)."""
        handover = self._hands_over()
        log.info("stopping", extra={"op": "shutdown", "handover": handover})
        metrics.unwatch_speaker(self.metric_figures)
        if self.view is not None:
            self.view.stop(leave=handover)
        if handover or not self.owned:
            self.responder.sync({})
            self.responder.close()
        else:
            self._keep_alive()  # a whole timeout from now: the successor has that long to adopt the maps
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
            node: Node | None = Node.from_dict(self.client.request("GET", path, timeout=2.0))
        except ApiError as error:
            node = None if error.status == 404 else self.nodes.get(self.options.node_name)
        if node is None:
            return True
        return node.unschedulable or node.deleting

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.health.beat()
            self._update_readiness()
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
                self._safely(self._send_gratuitous, "gratuitous announcements")
            else:
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

    def _safely(self, action: Callable[[], None], what: str) -> None:
        """The timer path (the gratuitous schedule): like a reconcile, a failure here is logged and
        never ends the loop (the next wake-up retries; the fast path keeps answering meanwhile)."""
        try:
            action()
        except Exception as error:
            metrics.update_errors.inc()
            log.error("%s failed: %s", what, error, exc_info=True, extra={"op": "timer"})

    def _update_readiness(self) -> None:
        """Ready once the first plan is on the fast path: caches synced, a valid config, the cluster known."""
        if self.view is not None and not self.view.settled:
            self.health.set_ready(False, "joining the other speakers (memberlist)")
        elif self.config.current is None:
            self.health.set_ready(False, "no valid configuration yet")
        elif self._dirty:
            self.health.set_ready(False, "the last reconcile failed; retrying")
        else:
            self.health.set_ready(True, f"answering for {len(self.owned)} address/interface pairs")

    def _keep_alive(self) -> None:
        if self.view is not None and not self.view.settled:
            # A starting speaker may have adopted what its predecessor left answering: it lets that run on the
            # predecessor's deadline (a restart is hitless) but does not extend it until it knows the cluster
            # (after a crash the others may have taken those addresses over meanwhile).
            return
        # Written on every pass (one bpf syscall on a preallocated slot): after a SIGKILL the kernel answers for
        # the whole timeout less at most one pass, which is what --liveness-timeout promises and what the peers'
        # failover waits for.
        deadline = time.monotonic_ns() + int(self.options.liveness_timeout_s * 1e9)
        self.responder.set_liveness_deadline(deadline)

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self) -> None:
        self.reconciles += 1
        metrics.updates.inc()
        with self._lock:
            dirty, self._dirty_services = self._dirty_services, set()
            replan, self._replan_all = self._replan_all, False
            nodes_changed, self._nodes_changed = self._nodes_changed, False
            config_changed, self._config_changed = self._config_changed, False
        try:
            self._replan(dirty, replan, nodes_changed, config_changed)
        except BaseException:
            with self._lock:  # nothing marked is lost: the retry re-plans everything
                self._replan_all = True
                self._nodes_changed = True
                self._config_changed = True
            raise

    def _replan(self, dirty: set[str], replan: bool, nodes_changed: bool, config_changed: bool) -> None:
        """Re-plan the dirty Services; all of them when the config, the links or this node itself changed; when
        other nodes changed (a Node event, the live set), the Services whose election those nodes can move."""
        if config_changed and self.config.reload():
            replan = True
        config = self.config.current
        now = time.monotonic()
        if now - self._links_read_at >= self.options.links_refresh_s:
            links = read_links()
            self._links_read_at = now
            if links != self._links:
                self._links, replan = links, True
            if self._exclusions is not None and self._exclusions.refresh():
                replan = True
        nodes = self._node_map() if nodes_changed or self._context is None else self._context.nodes
        assessment = self._assess(nodes, now)
        self._recheck_at = assessment.recheck_at
        self._keep_alive()
        if self.view is not None and not self.view.settled:
            # Still joining: alone, this node would elect itself for everything. Leave the fast path as it is
            # (empty, or what a previous process of this speaker left answering), plan nothing, look again shortly.
            self._recheck_at = time.monotonic() + 0.1
            with self._lock:
                self._replan_all = True
            return
        changed = self._changed_nodes(nodes, assessment.live)
        if self.options.node_name in changed:
            replan = True  # its labels decide the interfaces and the advertisements that select it
        self._assessment = assessment
        changes: list[PlanChange] = []
        if config is None:
            dirty = self.book.keys()
        elif replan or self._context is None or self._side is None:
            self._context = election.ElectionContext(nodes, assessment.live, self.options.ignore_exclude_lb)
            exclusion = self._exclusions.current if self._exclusions is not None else self.options.exclusion
            self._side = layer2.NodeSide.of(self.options.node_name, self._links, exclusion)
            dirty = {key for key, _ in self.services.items()} | self.book.keys()
        elif changed:
            self._context = context = election.ElectionContext(nodes, assessment.live, self.options.ignore_exclude_lb)
            dirty |= self.book.affected_by(changed, context)
        for key in dirty:
            change = self.book.put(key, None if config is None else self._plan_service(key, config))
            if change is not None:
                changes.append(change)
        member_change = self.view.last_change if self.view is not None else None
        if self.view is not None:
            self.view.last_change = None
        # The book's revision says whether its table changed: comparing the tables would hash every owned
        # address (ipaddress hashes in Python) on every reconcile.
        target = (self.book.revision, assessment.serving)
        plan_owned: Owned = self.book.owned if assessment.serving else {}  # a minority withdraws everything
        if target != self._synced and plan_owned != self.owned:
            self.responder.sync(plan_owned)
            self._log_moves(self.owned, plan_owned, member_change)
            self.owned = dict(plan_owned)
            self._owned_changed = True
            owned_ips = {str(ip) for ip, _ in self.owned}
            with self._lock:  # an address no longer answered loses its gratuitous series, as its other series
                self._gratuitous_sent = {ip: n for ip, n in self._gratuitous_sent.items() if ip in owned_ips}
        self._synced = target
        self._send_gratuitous()
        self._report(changes, assessment.serving)

    def _changed_nodes(self, nodes: Mapping[str, Node], live: frozenset[str]) -> set[str]:
        """The nodes whose object or liveness differ from those the current plans were made with."""
        if self._context is None:
            return set()
        before = self._context
        changed = set() if live is before.live else set(before.live ^ live)
        if nodes is not before.nodes:
            changed.update(
                name for name in nodes.keys() | before.nodes.keys() if nodes.get(name) != before.nodes.get(name)
            )
        return changed

    def _node_map(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes.snapshot()}

    def _plan_service(self, key: str, config: Config) -> layer2.ServicePlan | None:
        service = self.services.get(key)
        if service is None or not class_matches(service, self.options.lb_class):
            return None
        assert self._side is not None and self._context is not None
        with self._lock:
            slices = self._slices_of.get(key, ())
        return layer2.plan_service(self._side, service, config, self._context, slices)

    def _log_moves(self, before: Mapping[OwnedKey, bytes], after: Owned, change: MemberEvent | None) -> None:
        """Announce/withdraw lines, naming membership as the reason when a membership change led to them. They
        list what moved, and the synced line counts the owned pairs instead of listing them: a node answering a
        thousand addresses does not format a thousand on every sync (and nothing is formatted below INFO)."""
        if not log.isEnabledFor(logging.INFO):
            return
        reason = f"membership: {change.member.name} {change.kind} ({change.reason})" if change else "reconcile"
        gained = sorted(f"{ip}@{ifname}" for ip, ifname in after.keys() - before.keys())
        lost = sorted(f"{ip}@{ifname}" for ip, ifname in before.keys() - after.keys())
        if gained:
            log.info("announcing", extra={"op": "setBalancer", "addresses": gained, "reason": reason})
        if lost:
            log.info("withdrawing", extra={"op": "deleteBalancer", "addresses": lost, "reason": reason})
        log.info("fast path synced", extra={"op": "syncDataplane", "owned": len(after)})

    def _send_gratuitous(self) -> None:
        now = time.monotonic()
        if not self._owned_changed and (self._gratuitous_wake is None or now + 1e-6 < self._gratuitous_wake):
            return  # the same pairs and nothing due: schedule() would return what it returned last time
        result = announce.schedule(self._gratuitous, self.owned, now, self.options.gratuitous)
        self._owned_changed = False
        self._gratuitous = result.state
        self._gratuitous_wake = result.wake_at
        failed = announce.announce_due(self.responder, result.due)
        for (address, interface), error in failed:
            log.warning("gratuitous %s on %s failed: %s", address, interface, error, extra={"op": "gratuitous"})
        if result.due:
            refused = {key for key, _ in failed}
            with self._lock:  # only frames the kernel took count as sent, as MetalLB counts after a send
                for address, interface in result.due:
                    if (address, interface) not in refused:
                        ip = str(address)
                        self._gratuitous_sent[ip] = self._gratuitous_sent.get(ip, 0) + 1

    def _report(self, changes: list[PlanChange], serving: bool) -> None:
        """Events and ServiceL2Status for the Services whose plan changed: nodeAssigned when this node starts
        announcing one, announceFailed once per warning while it holds; the statuses of what is announced."""
        node = self.options.node_name
        for change in changes:
            before, after = change.before, change.after
            if after is not None and after.announcement is not None and (before is None or before.announcement is None):
                self._record(status.node_assigned_event(after.announcement.service, node))
            for event in after.warnings if after is not None else ():
                if before is None or event not in before.warnings:
                    self._record(event)
            if change.announcement_changed:
                self._status_dirty = True
                self._announcement_moved(change)
                namespace, _, name = change.key.partition("/")
                if after is not None and after.announcement is not None:
                    announcement = after.announcement
                    self._l2_desired[(namespace, name)] = status.desired_l2_status(
                        announcement.service, node, announcement.interfaces.listed, namespace=self.options.namespace
                    )
                else:
                    self._l2_desired.pop((namespace, name), None)
        desired = self._l2_desired if serving else {}
        if self._status_dirty or serving != self._status_serving:
            self._l2_writer.submit(dict(desired))  # written (and retried) off this thread: see LatestStateWriter
            self._status_dirty = False
            self._status_serving = serving

    def _announcement_moved(self, change: PlanChange) -> None:
        """MetalLB's serviceAnnounced / serviceWithdrawn lines (its speaker/main.go words: event, msg, ips, pool,
        protocol, reason) once per start and end of an announcement, not on every reconcile as MetalLB, and the
        Service's metallb_speaker_announced series."""
        before = change.before.announcement if change.before else None
        after = change.after.announcement if change.after else None
        moved = before is not None and after is not None and before.addresses != after.addresses
        if before is not None and (after is None or moved):
            reason = "loadBalancerIPChanged" if moved else (change.after.reason if change.after else "serviceDeleted")
            log.info(
                "withdrawing service announcement",
                extra={"event": "serviceWithdrawn", "service": change.key, "ip": [str(a) for a in before.addresses],
                       "reason": reason, "protocol": "layer2"},
            )
        if after is not None and (before is None or moved):
            log.info(
                "service has IP, announcing",
                extra={"event": "serviceAnnounced", "service": change.key, "ips": [str(a) for a in after.addresses],
                       "pool": after.service.annotation_map.get(ANNOTATION_IP_ALLOCATED_FROM_POOL),
                       "protocol": "layer2"},
            )
        with self._lock:
            if after is None:
                self._announced.pop(change.key, None)
            else:
                self._announced[change.key] = tuple(metrics.Announced(change.key, str(a)) for a in after.addresses)

    def _record(self, event: status.ServiceEvent) -> None:
        ref = ObjectRef("Service", event.namespace, event.service_name, event.service_uid)
        self.recorder.record(ref, event.type, event.reason, event.message)

    def metric_figures(self) -> metrics.SpeakerFigures:
        """For the scrape (any thread): the responder's stats() is called by the collector, then."""
        with self._lock:
            gratuitous = dict(self._gratuitous_sent)
            announced = [a for items in self._announced.values() for a in items] if self._status_serving else []
        return metrics.SpeakerFigures(self.options.node_name, self.responder.stats, gratuitous, tuple(announced))
