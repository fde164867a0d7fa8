"""Checks across objects: unique names, overlapping addresses, advertisements against pools, peer references.

Each check reports on the later object in manifest order (the one that, applied second, MetalLB would refuse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metallb_fast.config.addresses import shortest_prefix
from metallb_fast.config.fields import Parsed
from metallb_fast.config.model import (
    AddressRange,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Pool,
    advertisement_selects_pool,
    any_selector_matches,
)
from metallb_fast.config.selectors import selector_lists_can_both_match


def check_unique_names(objects: Sequence[Parsed[object]], kind: str) -> None:
    first: dict[str, Parsed[object]] = {}
    for obj in objects:
        name = obj.fields.name
        if not name:
            continue
        if name in first:
            earlier = first[name].fields.position + 1
            obj.fields.report("metadata.name", name, f"duplicate {kind} name (object #{earlier} has it too)")
        else:
            first[name] = obj


@dataclass(frozen=True)
class _Entry:
    pool: Parsed[Pool]
    index: int  # in pool.ranges

    @property
    def range(self) -> AddressRange:
        return self.pool.value.ranges[self.index]

    @property
    def order(self) -> tuple[int, int]:
        return (self.pool.fields.position, self.index)


def check_overlaps(pools: Sequence[Parsed[Pool]]) -> None:
    """No address may belong to two entries, in one pool or across pools (sort by start, sweep)."""
    entries = [_Entry(p, i) for p in pools for i in range(len(p.value.ranges))]
    entries.sort(key=lambda e: (e.range.version, int(e.range.first), e.order))
    active: list[_Entry] = []
    for entry in entries:
        active = [a for a in active if a.range.version == entry.range.version and a.range.overlaps(entry.range)]
        for other in active:
            earlier, later = sorted((other, entry), key=lambda e: e.order)
            same_pool = earlier.pool is later.pool
            owner = "this pool" if same_pool else f'IPAddressPool "{earlier.pool.fields.name}"'
            later.pool.fields.report(
                later.pool.paths[later.index],
                later.range.text,
                f"overlaps {earlier.range.text} ({earlier.pool.paths[earlier.index]} of {owner})",
            )
        active.append(entry)


def _selected_pools(adv: BGPAdvertisement, pools: Sequence[Parsed[Pool]]) -> list[Parsed[Pool]]:
    """The existing pools an advertisement applies to (naming a missing pool is not an error)."""
    return [p for p in pools if advertisement_selects_pool(adv, p.value)]


def _check_aggregation(adv: Parsed[BGPAdvertisement], pool: Parsed[Pool]) -> None:
    reported: set[int] = set()
    for entry in pool.value.ranges:
        if entry.version in reported:
            continue
        length = adv.value.aggregation_length if entry.version == 4 else adv.value.aggregation_length_v6
        shortest = shortest_prefix(entry)
        if length < shortest:
            reported.add(entry.version)
            key = "aggregationLength" if entry.version == 4 else "aggregationLengthV6"
            adv.fields.report(
                f"spec.{key}",
                length,
                f'is shorter than the /{shortest} prefix of "{entry.text}" in IPAddressPool "{pool.value.name}" '
                f"(the route would cover addresses outside the pool; use {shortest} or more)",
            )


def _aggregation_differs(a: BGPAdvertisement, b: BGPAdvertisement, pool: Pool) -> bool:
    """MetalLB's isAggrLengthDifferent: different lengths for every family the pool has make distinct routes."""
    has_v4, has_v6 = pool.has_family(4), pool.has_family(6)
    if not has_v4 and not has_v6:
        return True
    v4_differs = a.aggregation_length != b.aggregation_length
    v6_differs = a.aggregation_length_v6 != b.aggregation_length_v6
    if has_v4 and has_v6:
        return v4_differs and v6_differs
    return v4_differs if has_v4 else v6_differs


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: Mapping[str, str]


def _nodes_overlap(a: BGPAdvertisement, b: BGPAdvertisement, nodes: Sequence[NodeView]) -> bool:
    """Whether one node may announce for both. With Node objects given, as MetalLB does with the cluster's nodes;
    without them, whether any node could match both selector lists."""
    if nodes:
        return any(
            any_selector_matches(a.node_selectors, n.labels) and any_selector_matches(b.node_selectors, n.labels)
            for n in nodes
        )
    return selector_lists_can_both_match(a.node_selectors, b.node_selectors)


def _local_prefs_compatible(a: BGPAdvertisement, b: BGPAdvertisement, pool: Pool, nodes: Sequence[NodeView]) -> bool:
    """MetalLB's BGPAdvertisementsHaveCompatibleLocalPref (an unset localPref is 0)."""
    if (a.local_pref or 0) == (b.local_pref or 0):
        return True
    if _aggregation_differs(a, b, pool):
        return True
    if a.peers and b.peers and not set(a.peers) & set(b.peers):
        return True
    return not _nodes_overlap(a, b, nodes)


def check_bgp_advertisements(
    advertisements: Sequence[Parsed[BGPAdvertisement]],
    pools: Sequence[Parsed[Pool]],
    nodes: Sequence[NodeView],
) -> None:
    attached: dict[int, list[Parsed[BGPAdvertisement]]] = {}
    for adv in advertisements:
        conflicts_reported: set[int] = set()
        for pool in _selected_pools(adv.value, pools):
            _check_aggregation(adv, pool)
            # With service selectors MetalLB cannot know which services share a route, so it does not check.
            if adv.value.service_selectors:
                continue
            earlier_advs = attached.setdefault(id(pool), [])
            for earlier in earlier_advs:
                if earlier.value.service_selectors or id(earlier) in conflicts_reported:
                    continue
                if not _local_prefs_compatible(adv.value, earlier.value, pool.value, nodes):
                    conflicts_reported.add(id(earlier))
                    adv.fields.report(
                        "spec.localPref",
                        adv.value.local_pref or 0,
                        f"conflicts with localPref {earlier.value.local_pref or 0} of BGPAdvertisement "
                        f'"{earlier.value.name}" for IPAddressPool "{pool.value.name}": both announce the same '
                        "routes (same aggregation length, overlapping peers and nodes)",
                    )
            earlier_advs.append(adv)


def check_peer_references(
    peers: Sequence[Parsed[BGPPeer]],
    profiles: Sequence[Parsed[BFDProfile]],
    advertisements: Sequence[Parsed[BGPAdvertisement]],
    pools: Sequence[Parsed[Pool]],
) -> None:
    by_name = {p.value.name: p.value for p in profiles}
    for peer in peers:
        name = peer.value.bfd_profile
        if name is not None and name not in by_name:
            peer.fields.report("spec.bfdProfile", name, "no BFDProfile has this name")

    # MetalLB's validateConfig: BFD echo mode cannot run on sessions that carry an IPv6 pool.
    echo_peers: dict[str, str] = {}
    for peer in peers:
        profile = by_name.get(peer.value.bfd_profile or "")
        if profile is not None and profile.echo_mode:
            echo_peers[peer.value.name] = profile.name
    for adv in advertisements:
        targets = [n for n in (adv.value.peers or tuple(echo_peers)) if n in echo_peers]
        v6_pools = [p.value.name for p in _selected_pools(adv.value, pools) if p.value.has_family(6)]
        if targets and v6_pools:
            adv.fields.report(
                "spec.peers" if adv.value.peers else "spec",
                None,
                f'advertises IPv6 IPAddressPool "{v6_pools[0]}" to BGPPeer "{targets[0]}" whose BFDProfile '
                f'"{echo_peers[targets[0]]}" has echoMode on (BFD echo is not possible there)',
            )
