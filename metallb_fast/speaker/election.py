"""Layer-2 election: which node announces a Service's addresses, decided exactly as MetalLB's speaker does.

Every speaker runs the same pure computation over the same inputs and so agrees on one winner without talking
to the others (MetalLB speaker/layer2_controller.go ShouldAnnounce, with the service-selector candidate set,
the allow-shared-ip guard and preferredNodeSelectors scoring of its newest releases).
The election is per Service, keyed on the text of its first ingress address, so every address of a dual-stack
Service lands on the same node, and Services sharing an address agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from metallb_fast.config.model import Config, L2Advertisement, Pool, any_selector_matches
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.vocabulary import LABEL_EXCLUDE_FROM_LB, IPAddress, ip_text, parse_ip, shares_address

lowest_hash: Callable[[list[bytes], bytes], int] | None
try:  # the hash loop in C (ext/election.pyx): 500 candidates cost ~0.06 ms instead of ~1 ms with hashlib
    from metallb_fast.speaker._election import lowest_hash
except ImportError:  # a source checkout without the built extension: the same winner, slower
    lowest_hash = None

NOT_OWNER = "notOwner"
SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"
NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
IP_NOT_ALLOWED = "ipNotAllowed"  # the address is in no pool: MetalLB withdraws with this reason
# MetalLB's withdraw reasons for a whole Service, decided before any election (SetBalancer before ShouldAnnounce).
NOT_LOAD_BALANCER = "notLoadBalancer"
NO_IP_ALLOCATED = "noIPAllocated"
INVALID_IP = "invalidIP"

EXCLUDE_FROM_LB_LABEL = LABEL_EXCLUDE_FROM_LB
NETWORK_UNAVAILABLE = "NetworkUnavailable"


@dataclass(frozen=True)
class ServiceAddresses:
    """A Service's ingress addresses as the speaker reads them, and why it withdraws the whole Service, if it does."""

    addresses: tuple[IPAddress, ...]  # () when any ingress text is not an IP address
    withdraw: str | None  # NOT_LOAD_BALANCER, NO_IP_ALLOCATED or INVALID_IP; None: the election decides
    invalid: str | None  # the first ingress text that is not an IP address


def service_addresses(service: Service) -> ServiceAddresses:
    """The Service-wide checks every speaker makes before electing, in MetalLB's order."""
    found: list[IPAddress] = []
    invalid: str | None = None
    for text in service.ingress_ips:
        ip = parse_ip(text)  # as the controller reads it: ::ffff:a.b.c.d is IPv4, a zone is invalid
        if ip is None:
            invalid = text
            break
        found.append(ip)
    addresses = () if invalid is not None else tuple(found)
    if service.type != "LoadBalancer":
        withdraw: str | None = NOT_LOAD_BALANCER
    elif invalid is not None:
        withdraw = INVALID_IP
    elif not addresses:
        withdraw = NO_IP_ALLOCATED
    else:
        withdraw = None
    return ServiceAddresses(addresses=addresses, withdraw=withdraw, invalid=invalid)


def pool_name_for(config: Config, addresses: Iterable[IPAddress]) -> str | None:
    """The name of `pool_for`, what `elect` takes."""
    pool = pool_for(config, addresses)
    return pool.name if pool else None


def pool_for(config: Config, addresses: Iterable[IPAddress]) -> Pool | None:
    """The pool holding every one of a Service's addresses (MetalLB's poolFor); None when there is none."""
    wanted = tuple(addresses)
    if not wanted:
        return None
    return next((p for p in config.pools if all(p.contains(ip) for ip in wanted)), None)


def applying_advertisements(config: Config, pool: Pool, service: Service) -> tuple[L2Advertisement, ...]:
    """The L2Advertisements that apply to `service`: they select its pool and their serviceSelectors match it."""
    labels = service.label_map
    return tuple(
        adv
        for adv in config.l2_advertisements
        if config.advertisement_selects_pool(adv, pool) and any_selector_matches(adv.service_selectors, labels)
    )


def advertisement_selects_node(adv: L2Advertisement, node: Node | None) -> bool:
    """MetalLB resolves nodeSelectors against the Node objects it knows: an unknown node is never selected."""
    return node is not None and any_selector_matches(adv.node_selectors, node.label_map)


def has_serving_endpoint(endpoint_slices: Iterable[EndpointSlice]) -> bool:
    return any(ep.can_serve for s in endpoint_slices for ep in s.endpoints)


def nodes_with_serving_endpoint(endpoint_slices: Iterable[EndpointSlice]) -> frozenset[str]:
    return frozenset(ep.node_name for s in endpoint_slices for ep in s.endpoints if ep.can_serve and ep.node_name)


def election_key(service: Service, ip: IPAddress) -> str:
    """The text hashed with each node name: the Service's first ingress address, canonicalised like Go's
    net.IP.String(); `ip` only stands in when the Service has no parsable ingress yet."""
    first = parse_ip(service.ingress_ips[0]) if service.ingress_ips else None
    text = ip_text(first or parse_ip(str(ip)))  # Go prints an IPv4-mapped address as plain IPv4
    # The Service's own string when it is already canonical (nearly always): a Standing keeps it per Service.
    return service.ingress_ips[0] if service.ingress_ips and service.ingress_ips[0] == text else text


def node_hash(node_name: str, key: str) -> bytes:
    return hashlib.sha256(f"{node_name}#{key}".encode()).digest()


def lowest_hashed(names: Sequence[str], prefixes: list[bytes], key: str) -> str:
    """The name whose node_hash is the smallest; `prefixes` holds each name's f"{name}#" encoded."""
    if lowest_hash is None:
        return min(names, key=lambda name: node_hash(name, key))
    return names[lowest_hash(prefixes, key.encode())]


Rank = tuple[int, bytes]  # (-preference score, hash): the smallest wins


def preference_scores(advertisements: Iterable[L2Advertisement], nodes: Mapping[str, Node]) -> dict[str, int]:
    """Summed preferredNodeSelectors weights. An advertisement only scores nodes its own nodeSelectors select."""
    scores: dict[str, int] = {}
    for adv in advertisements:
        if not adv.preferred_node_selectors:
            continue
        for name, node in nodes.items():
            if not advertisement_selects_node(adv, node):
                continue
            labels = node.label_map
            weight = sum(p.weight for p in adv.preferred_node_selectors if p.preference.matches(labels))
            if weight:
                scores[name] = scores.get(name, 0) + weight
    return scores


@dataclass(frozen=True, slots=True)
class Standing:
    """What decides a Service's winner among the nodes, kept so that a change of a few nodes (one dies, one joins,
    one is relabelled) is checked against each Service in O(changed nodes) instead of re-running its election
    over every node."""

    advertisements: tuple[L2Advertisement, ...]
    key: str  # election_key
    endpoint_nodes: frozenset[str] | None  # externalTrafficPolicy Local: only these may win
    winner: str | None
    winner_score: int  # the winner's Rank, kept as its two parts (one tuple fewer per Service)
    winner_hash: bytes | None

    def may_change(self, changed: Set[str], context: ElectionContext) -> bool:
        """Could the winner differ under `context` (the new nodes and live set) when only `changed` nodes differ
        from the ones this standing was computed with? Exact: False means the election gives the same winner."""
        if self.winner is not None and self.winner in changed:
            return True
        _, scores, candidates = context.for_advertisements(self.advertisements)
        for name in changed:
            if name not in candidates or (self.endpoint_nodes is not None and name not in self.endpoint_nodes):
                continue
            if self.winner_hash is None or (-scores.get(name, 0), node_hash(name, self.key)) < (
                -self.winner_score, self.winner_hash
            ):
                return True
        return False


@dataclass(frozen=True)
class Election:
    """The outcome for one Service, the same on every node; `reason_for(node)` gives one node's verdict."""

    pool: Pool | None
    advertisements: tuple[L2Advertisement, ...]  # the ones that apply to the Service
    order: tuple[str, ...]  # candidates, best first
    blocked: str | None = None  # a reason that holds for every node (no endpoint, shared IP guard, no pool)
    selected_nodes: frozenset[str] = frozenset()  # nodes some applying advertisement selects
    standing: Standing | None = None  # None when no node set can change the outcome (blocked)

    @property
    def winner(self) -> str | None:
        if self.blocked is not None or not self.order:
            return None
        return self.order[0]

    def reason_for(self, node_name: str) -> str | None:
        """None when `node_name` announces, else MetalLB's reason string for withdrawing there."""
        if self.blocked is not None:
            return self.blocked
        if node_name not in self.selected_nodes:
            return NO_MATCHING_ADVERTISEMENT
        return None if self.winner == node_name else NOT_OWNER


class ElectionContext:
    """What every Service's election shares while the Nodes, the live set and the config stay the same: the nodes
    each set of advertisements selects, their preference scores and the candidates they leave. Computed once per
    set of advertisements instead of once per Service, so a full re-plan of thousands of Services does not walk
    every Node's labels for each one. Pure; a new context is made whenever one of its inputs changes."""

    def __init__(
        self, nodes: Mapping[str, Node], live_nodes: Set[str] | None = None, ignore_exclude_lb: bool = False
    ) -> None:
        self.nodes = nodes
        self.live = frozenset(nodes) if live_nodes is None else frozenset(live_nodes)
        self.ignore_exclude_lb = ignore_exclude_lb
        self._by_advertisements: dict[
            tuple[L2Advertisement, ...], tuple[frozenset[str], dict[str, int], frozenset[str]]
        ] = {}
        self._hash_inputs: dict[frozenset[str], tuple[tuple[str, ...], list[bytes]]] = {}

    def hash_inputs(self, candidates: frozenset[str], shared: bool) -> tuple[tuple[str, ...], list[bytes]]:
        """The candidates in a fixed order and their encoded hash prefixes; kept when `shared`, a set every
        Service of an advertisement set elects over (a Local Service's own set is small and built each time)."""
        found = self._hash_inputs.get(candidates) if shared else None
        if found is None:
            names = tuple(candidates)
            found = (names, [f"{name}#".encode() for name in names])
            if shared:
                self._hash_inputs[candidates] = found
        return found

    def for_advertisements(
        self, advertisements: tuple[L2Advertisement, ...]
    ) -> tuple[frozenset[str], dict[str, int], frozenset[str]]:
        """(nodes selected by some advertisement, preference scores, candidates before the endpoint rule)."""
        found = self._by_advertisements.get(advertisements)
        if found is None:
            nodes = self.nodes
            selected = frozenset(
                name for name, node in nodes.items() if any(advertisement_selects_node(a, node) for a in advertisements)
            )
            # `selected` only holds known Nodes, so nodes[name] below always exists.
            candidates = frozenset(
                name
                for name in self.live & selected
                if not nodes[name].condition_is_true(NETWORK_UNAVAILABLE)
                and (self.ignore_exclude_lb or EXCLUDE_FROM_LB_LABEL not in nodes[name].label_map)
            )
            found = (selected, preference_scores(advertisements, nodes), candidates)
            self._by_advertisements[advertisements] = found
        return found


def elect(
    service: Service,
    ip: IPAddress,
    config: Config,
    pool_name: str | None,
    nodes: Mapping[str, Node],
    endpoint_slices: Iterable[EndpointSlice],
    live_nodes: Set[str] | None = None,
    ignore_exclude_lb: bool = False,
    context: ElectionContext | None = None,
    full_order: bool = True,
) -> Election:
    """Run the election for `service` (whose address `ip` lies in pool `pool_name`).

    live_nodes: the speakers membership reports alive; None (no membership) means every known Node.
    context: shared work of the other Services' elections over the same nodes and live set (they are then taken
    from it, not from `nodes`/`live_nodes`/`ignore_exclude_lb`).
    full_order: False computes the winner only (`order` holds just it): what the speaker needs, without sorting.
    """
    slices = tuple(endpoint_slices)
    pool = config.pool(pool_name) if pool_name else None
    if pool is None:
        return Election(pool=None, advertisements=(), order=(), blocked=IP_NOT_ALLOWED)
    # Step 1 comes first in MetalLB too: without a serving endpoint no node announces, whatever the config says.
    if not has_serving_endpoint(slices):
        return Election(pool=pool, advertisements=(), order=(), blocked=NOT_OWNER)
    advertisements = applying_advertisements(config, pool, service)
    # Siblings sharing an address could match different service-scoped advertisements and elect different
    # nodes, so two MACs would answer: MetalLB refuses the combination outright.
    if shares_address(service) and any(adv.service_selectors for adv in advertisements):
        return Election(pool=pool, advertisements=advertisements, order=(), blocked=SHARED_IP_WITH_SERVICE_SELECTOR)
    context = context or ElectionContext(nodes, live_nodes, ignore_exclude_lb)
    selected, scores, candidates = context.for_advertisements(advertisements)
    endpoint_nodes = nodes_with_serving_endpoint(slices) if service.external_traffic_policy == "Local" else None
    if endpoint_nodes is not None:
        candidates &= endpoint_nodes
    key = election_key(service, ip)

    def rank(name: str) -> Rank:
        return (-scores.get(name, 0), node_hash(name, key))

    if full_order:
        order = tuple(sorted(candidates, key=rank))
    elif candidates and not scores:  # the winner only, what the speaker needs: no sort, hashes in C
        order = (lowest_hashed(*context.hash_inputs(candidates, shared=endpoint_nodes is None), key),)
    elif candidates:
        order = (min(candidates, key=rank),)
    else:
        order = ()
    winner = order[0] if order else None
    standing = Standing(
        advertisements, key, endpoint_nodes, winner, scores.get(winner, 0) if winner else 0,
        node_hash(winner, key) if winner else None,
    )
    return Election(pool=pool, advertisements=advertisements, order=order, selected_nodes=selected, standing=standing)
