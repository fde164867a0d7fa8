"""The controller's per-Service decision, MetalLB's SetBalancer/convergeBalancer as a pure function.

Input: the allocator (holding the Config and the current assignments) and a Service as the API server has it.
Output: a Decision naming the status.loadBalancer.ingress and ip-allocated-from-pool annotation the Service should
have, the Events to record and whether every Service should be processed again. The allocator is updated in
place (it is the decision state); nothing here does I/O.

Deliberate differences from MetalLB, both to avoid harm:
- A Service whose spec.loadBalancerClass is not ours is left alone (handled=False, nothing to write), exactly
  like MetalLB's filterByLoadBalancerClass; clearing it would fight the controller that owns that class.
- PreferDualStack with one cluster IP: MetalLB adds the other family from the same pool, then on the next pass
  sees a dual-stack status for a single-stack Service, clears it and starts over, forever. We keep the dual-stack
  status (serviceFamilyChanged accepts it under PreferDualStack), which is the state MetalLB keeps reaching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from metallb_fast.allocator import service_keys
from metallb_fast.allocator.allocator import AllocationError, Allocator
from metallb_fast.allocator.ipfamily import Family, FamilyError, for_ips, go_list, go_quote, go_quote_ips, go_quote_list
from metallb_fast.config.model import Config
from metallb_fast.controller import events as ev
from metallb_fast.controller.events import Event
from metallb_fast.resources import Service
from metallb_fast.vocabulary import (
    ANNOTATION_IP_ALLOCATED_FROM_POOL,
    DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL,
    DEPRECATED_GROUP,
    IPAddress,
    class_matches,
    ip_text,
    parse_ip,
)


class SyncResult(str, Enum):
    SUCCESS = "success"
    ERROR_NO_RETRY = "errorNoRetry"  # converge failed; the Service waits for another change
    REPROCESS_ALL = "reprocessAll"  # addresses were freed: Services still waiting may now fit


@dataclass(frozen=True)
class Decision:
    key: str
    handled: bool  # False: not ours (class mismatch) or no configuration yet; write nothing
    ingress_ips: tuple[str, ...]  # desired status.loadBalancer.ingress[].ip
    annotations: tuple[tuple[str, str], ...]  # desired metadata.annotations, sorted
    events: tuple[Event, ...]
    result: SyncResult
    changed: bool  # the Service's status or annotations must be written

    @property
    def pool(self) -> str | None:
        """The desired metallb.io/ip-allocated-from-pool."""
        return dict(self.annotations).get(ANNOTATION_IP_ALLOCATED_FROM_POOL)


@dataclass
class _Working:
    """The mutable copy convergeBalancer works on: status addresses and annotations."""

    service: Service
    allocator: Allocator
    ingress: list[str]
    annotations: dict[str, str]
    events: list[Event] = field(default_factory=list)

    def clear(self) -> None:
        """clearServiceState."""
        self.allocator.release(self.service.key)
        self.ingress = []
        self.annotations.pop(ANNOTATION_IP_ALLOCATED_FROM_POOL, None)
        self.annotations.pop(DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL, None)

    def settle(self, ips: list[IPAddress | None], pool: str) -> None:
        self.ingress = [ip_text(ip) for ip in ips]
        self.annotations[ANNOTATION_IP_ALLOCATED_FROM_POOL] = pool
        self.annotations.pop(DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL, None)


def decide(allocator: Allocator, service: Service, lb_class: str | None = None) -> Decision:
    """SetBalancer for a Service that exists."""
    key = service.key
    if not class_matches(service, lb_class) or allocator.config is None:
        return Decision(key, False, service.ingress_ips, service.annotations, (), SyncResult.SUCCESS, False)

    previous = allocator.ips_of(key)
    annotations = service.annotation_map
    work = _Working(service, allocator, list(service.ingress_ips), dict(annotations))
    result = SyncResult.SUCCESS if _converge(work) else SyncResult.ERROR_NO_RETRY
    ingress = tuple(work.ingress)
    changed = ingress != service.ingress_ips or work.annotations != annotations
    events = list(work.events)
    if changed:
        # MetalLB warns about deprecated annotations only when it has something to write, to stay quiet
        for name in sorted(annotations):
            if name.startswith(DEPRECATED_GROUP):  # MetalLB matches the group without the slash
                events.append(ev.warning(ev.DEPRECATED_ANNOTATION, f"Service uses deprecated annotation {name}"))
        if previous and not allocator.ips_of(key) and allocator.pool_for_ips(previous) is not None:
            result = SyncResult.REPROCESS_ALL
    return Decision(key, True, ingress, tuple(sorted(work.annotations.items())), tuple(events), result, changed)


def forget(allocator: Allocator, key: str) -> SyncResult:
    """SetBalancer for a deleted Service: its addresses go back, and waiting Services get another chance."""
    return SyncResult.REPROCESS_ALL if allocator.release(key) else SyncResult.SUCCESS


def apply_config(
    allocator: Allocator, config: Config | None, namespaces: Mapping[str, Mapping[str, str]] | None = None
) -> SyncResult:
    """SetPools: a new configuration means every Service is processed again (assigned ones first)."""
    if config is None:
        return SyncResult.ERROR_NO_RETRY
    allocator.set_config(config, namespaces)
    return SyncResult.REPROCESS_ALL


def _family_changed(lb_family: Family, cluster_family: Family, policy: str) -> bool:
    """serviceFamilyChanged, plus: a dual-stack status is kept under PreferDualStack (see module doc)."""
    if lb_family is Family.UNKNOWN:
        return True
    if lb_family == cluster_family:
        return False
    return policy != "PreferDualStack" or (lb_family is not Family.DUAL and cluster_family is not Family.DUAL)


def _converge(work: _Working) -> bool:
    """convergeBalancer; False where MetalLB returns ErrConverge."""
    service, allocator, key = work.service, work.allocator, work.service.key
    if service.type != "LoadBalancer":
        work.clear()
        return True
    if not allocator.has_pools:
        work.clear()
        return False
    if not service.cluster_ips:
        work.clear()
        return False

    lb_ips: list[IPAddress | None] = [parse_ip(text) for text in service.ingress_ips if text]
    policy = service_keys.family_policy(service)
    if policy == "RequireDualStack" and len(service.cluster_ips) < 2:
        work.events.append(
            ev.warning(
                ev.NOT_ENOUGH_CLUSTER_IPS,
                f"Service requires dual stack but not enough clusterips {go_list(service.cluster_ips)}",
            )
        )
        work.clear()
        return False

    if not lb_ips:
        work.clear()
    else:
        try:
            lb_family = for_ips(lb_ips)
        except FamilyError as err:
            lb_family = Family.UNKNOWN
            work.events.append(
                ev.warning(ev.NO_LB_IPS_FAMILY, f"Failed to retrieve LBIPs IPFamily for {go_quote_ips(lb_ips)}: {err}")
            )
        try:
            cluster_family = service_keys.service_family(service)
        except FamilyError as err:
            work.events.append(
                ev.warning(
                    ev.NO_CLUSTER_IPS_FAMILY,
                    "Failed to retrieve ClusterIPs IPFamily for "
                    f"{go_quote_list(service.cluster_ips)} {service.cluster_ips[0]}: {err}",
                )
            )
            return False
        if _family_changed(lb_family, cluster_family, policy):
            work.clear()
            lb_ips = []

    if lb_ips:
        try:
            allocator.assign(service, lb_ips)
        except AllocationError as err:
            work.events.append(
                ev.normal(
                    ev.CLEAR_ASSIGNMENT,
                    f"current IP for {go_quote(key)} not allowed by config, will attempt for new IP assignment: {err}",
                )
            )
            work.clear()
            lb_ips = []
        wanted_pool = service_keys.desired_pool(service)
        if lb_ips and wanted_pool and allocator.pool_of(key) != wanted_pool:
            work.clear()
            lb_ips = []
        try:
            wanted, _ = service_keys.desired_ips(service)
        except ValueError as err:
            work.events.append(ev.warning(ev.LOAD_BALANCER_FAILED, f"invalid requested loadbalancer IPs: {err}"))
            return False
        if wanted and sorted(map(ip_text, lb_ips)) != sorted(map(ip_text, wanted)):
            work.clear()
            lb_ips = []

    if len(lb_ips) == 1 and policy == "PreferDualStack":
        existing = lb_ips[0]
        assert existing is not None  # assign accepted it
        try:
            added = allocator.allocate_additional_family(service, existing, allocator.pool_of(key))
        except AllocationError as err:
            work.events.append(
                ev.normal(ev.ADDITIONAL_ASSIGN_FAILED, f"cannot assign additional IP in PreferDualStack: {err}")
            )
        else:
            lb_ips.append(added)
            work.events.append(ev.normal(ev.IP_ALLOCATED, f"Assigned additional IP {go_quote(str(added))}"))

    if not lb_ips:
        try:
            lb_ips = list(allocator.allocate_for_service(service))
        except AllocationError as err:
            work.events.append(ev.warning(ev.ALLOCATION_FAILED, f"Failed to allocate IP for {go_quote(key)}: {err}"))
            return False
        work.events.append(ev.normal(ev.IP_ALLOCATED, f"Assigned IP {go_quote_ips(lb_ips)}"))

    pool = allocator.pool_of(key)
    if not pool:
        work.events.append(ev.warning(ev.INTERNAL_ERROR, "allocated an IP that has no pool"))
        work.clear()
        return False
    work.settle(lb_ips, pool)
    return True

