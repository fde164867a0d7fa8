"""Address assignment exactly as MetalLB's internal/allocator does it, without ever materialising a pool.

State is per used address only: who uses it, with which sharing key and ports. Each pool keeps, per family, its
ranges as integer pairs, the used addresses as maximal runs (usedset.UsedAddresses) and an index of shared
addresses by sharing key, so the lowest free-or-shareable address is found in O(log n) and a /8 or an IPv6 /64
costs the same memory as a /29.

Deliberate differences from MetalLB, all about determinism: where MetalLB walks a Go map (pools to fall back to,
pools of equal priority, other users named in an error) we use pool-name order, the order the API server lists
them in; the counters saturate at 2^63-1 where MetalLB's int64 sum can overflow.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from metallb_fast.allocator import service_keys
from metallb_fast.allocator.ipfamily import Family, FamilyError, for_ips, go_list, go_quote, go_quote_ips
from metallb_fast.allocator.service_keys import Port, SharingKey, port_text
from metallb_fast.allocator.usedset import UsedAddresses, is_buggy
from metallb_fast.config.model import Config, Pool
from metallb_fast.resources import Service
from metallb_fast.vocabulary import IPAddress, parse_ip

MAX_INT64 = 2**63 - 1
_FAMILY_VERSION = {Family.IPV4: 4, Family.IPV6: 6}


class AllocationError(ValueError):
    """An assignment MetalLB would refuse; the message is MetalLB's."""


@dataclass(frozen=True)
class PoolCounters:
    """Per pool and family, as MetalLB's PoolCounters (and the pool status / metrics built from them)."""

    assigned_ipv4: int
    available_ipv4: int
    assigned_ipv6: int
    available_ipv6: int


@dataclass
class _Use:
    """One used address: every Service on it, the key they share it under, which Service holds each port."""

    pool: str
    key: SharingKey
    services: set[str] = field(default_factory=set)
    ports: dict[Port, str] = field(default_factory=dict)


@dataclass
class _Allocation:
    pool: str
    ips: tuple[IPAddress, ...]
    ports: tuple[Port, ...]
    key: SharingKey


class _Space:
    """One pool, one family: ranges in the pool's order, used runs, shared addresses by key, counts."""

    __slots__ = ("avoid_buggy", "in_use", "ranges", "shareable", "total", "used")

    def __init__(self, ranges: list[tuple[int, int]], avoid_buggy: bool, total: int) -> None:
        self.ranges = ranges
        self.avoid_buggy = avoid_buggy
        self.used = UsedAddresses(skip_buggy=avoid_buggy)
        self.shareable: dict[SharingKey, list[int]] = {}
        self.in_use = 0
        self.total = total


@dataclass
class _PoolState:
    pool: Pool
    namespaces: frozenset[str]  # serviceAllocation namespaces plus those its namespace selectors select
    spaces: dict[int, _Space]


def _buggy_upto(value: int) -> int:
    """How many IPv4 addresses in [0, value] end in .0 or .255."""
    if value < 0:
        return 0
    return 2 * (value >> 8) + 1 + (1 if value & 0xFF == 0xFF else 0)


def _range_total(first: IPAddress, last: IPAddress, avoid_buggy: bool) -> int:
    """MetalLB's poolCount for one entry: its CIDRs' sizes, any CIDR of 2^62 or more counting as 2^63-1."""
    if first.version == 6:
        for net in ipaddress.summarize_address_range(first, last):
            if 128 - net.prefixlen >= 62:
                return MAX_INT64
    size = int(last) - int(first) + 1
    if avoid_buggy and first.version == 4:
        size -= _buggy_upto(int(last)) - _buggy_upto(int(first) - 1)
    return size


def _sort_key_priority(state: _PoolState) -> tuple[int, int, str]:
    """sortPools: lower positive priority first, unset (0) after every positive one; ties by name."""
    allocation = state.pool.service_allocation
    priority = allocation.priority if allocation is not None else None
    if priority is not None and priority > 0:
        return (0, priority, state.pool.name)
    return (1, 0, state.pool.name)


class Allocator:
    """Tracks pools and the addresses assigned to Services (keyed "namespace/name")."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._pools: dict[str, _PoolState] = {}
        self._allocs: dict[str, _Allocation] = {}
        self._uses: dict[int, dict[int, _Use]] = {4: {}, 6: {}}
        # per family: sorted range starts, and for each (last, pool name), to find an address's pool by bisect
        self._index: dict[int, tuple[list[int], list[tuple[int, str]]]] = {4: ([], []), 6: ([], [])}

    # ----------------------------------------------------------------------------------------- configuration
    @property
    def config(self) -> Config | None:
        return self._config

    @property
    def has_pools(self) -> bool:
        return bool(self._pools)

    def set_config(self, config: Config, namespaces: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """SetPools: allocations still inside some pool stay (following a renamed pool), the others are released.

        `namespaces` maps every namespace name to its labels, to resolve serviceAllocation.namespaceSelectors
        the way MetalLB does when it reads the configuration.
        """
        namespaces = namespaces or {}
        self._config = config
        self._pools = {}
        entries: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for pool in config.pools:
            spaces: dict[int, _Space] = {}
            for version in (4, 6):
                ranges = [(int(r.first), int(r.last)) for r in pool.ranges if r.version == version]
                if not ranges:
                    continue
                total = 0
                for r in pool.ranges:
                    if r.version == version:
                        total = min(MAX_INT64, total + _range_total(r.first, r.last, pool.avoid_buggy_ips))
                spaces[version] = _Space(ranges, pool.avoid_buggy_ips and version == 4, total)
                entries[version].extend((first, last, pool.name) for first, last in ranges)
            self._pools[pool.name] = _PoolState(pool, self._resolve_namespaces(pool, namespaces), spaces)
        for version in (4, 6):
            ordered = sorted(entries[version])
            self._index[version] = ([e[0] for e in ordered], [(e[1], e[2]) for e in ordered])

        old = self._allocs
        self._allocs = {}
        self._uses = {4: {}, 6: {}}
        for key, alloc in old.items():
            pool_name = self.pool_for_ips(alloc.ips)
            if pool_name is None:
                continue  # released: the Service is re-assigned when it is processed again
            alloc.pool = pool_name
            self._record(key, alloc)

    @staticmethod
    def _resolve_namespaces(pool: Pool, namespaces: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
        allocation = pool.service_allocation
        if allocation is None:
            return frozenset()
        selected = {
            name
            for name, labels in namespaces.items()
            if any(s.matches(labels) for s in allocation.namespace_selectors)
        }
        return frozenset(allocation.namespaces) | selected

    # --------------------------------------------------------------------------------------------- queries
    def pool_names(self) -> list[str]:
        return list(self._pools)

    def pool_of(self, key: str) -> str:
        """The pool the Service's addresses came from, "" when it has none (MetalLB's Pool)."""
        alloc = self._allocs.get(key)
        return alloc.pool if alloc else ""

    def ips_of(self, key: str) -> tuple[IPAddress, ...]:
        alloc = self._allocs.get(key)
        return alloc.ips if alloc else ()

    def pool_for_ips(self, ips: Sequence[IPAddress | None]) -> str | None:
        """poolFor: the one pool holding every address (an avoidBuggyIPs pool does not hold .0/.255)."""
        found: str | None = None
        for ip in ips:
            if ip is None:
                return None
            name = self._pool_holding(ip)
            if name is None or (found is not None and name != found):
                return None
            found = name
        return found

    def _pool_holding(self, ip: IPAddress) -> str | None:
        starts, rest = self._index[ip.version]
        value = int(ip)
        i = bisect_left(starts, value + 1) - 1
        if i < 0 or rest[i][0] < value:
            return None
        name = rest[i][1]
        if ip.version == 4 and self._pools[name].pool.avoid_buggy_ips and is_buggy(value):
            return None
        return name

    def counters(self, pool_name: str) -> PoolCounters:
        state = self._pools.get(pool_name)
        if state is None:
            return PoolCounters(0, 0, 0, 0)
        v4, v6 = state.spaces.get(4), state.spaces.get(6)
        a4, a6 = (v4.in_use if v4 else 0), (v6.in_use if v6 else 0)
        return PoolCounters(
            assigned_ipv4=a4,
            available_ipv4=(v4.total if v4 else 0) - a4,
            assigned_ipv6=a6,
            available_ipv6=(v6.total if v6 else 0) - a6,
        )

    def is_compatible(self, pool_name: str, service: Service) -> bool:
        """isPoolCompatibleWithService. MetalLB's quirk kept: when serviceAllocation names no namespace and its
        selectors select none, the namespace condition is dropped."""
        state = self._pools[pool_name]
        allocation = state.pool.service_allocation
        if allocation is None:
            return True
        if state.namespaces and service.namespace not in state.namespaces:
            return False
        if allocation.service_selectors:
            labels = service.label_map
            return any(s.matches(labels) for s in allocation.service_selectors)
        return True

    # ------------------------------------------------------------------------------------------ mutations
    def release(self, key: str) -> bool:
        """Unassign: free the Service's addresses; True when it had some."""
        alloc = self._allocs.pop(key, None)
        if alloc is None:
            return False
        for ip in alloc.ips:
            uses = self._uses[ip.version]
            value = int(ip)
            use = uses[value]
            for port in alloc.ports:
                if use.ports.get(port) == key:
                    del use.ports[port]
            use.services.discard(key)
            if use.services:
                continue
            del uses[value]
            state = self._pools.get(use.pool)
            if state is None:
                continue
            space = state.spaces[ip.version]
            space.used.discard(value)
            space.in_use -= 1
            self._unindex_shared(space, use.key, value)
        return True

    def _record(self, key: str, alloc: _Allocation) -> None:
        """MetalLB's internal assign: unconditional, the caller checked it is allowed."""
        self.release(key)
        self._allocs[key] = alloc
        space_of = self._pools[alloc.pool].spaces
        for ip in alloc.ips:
            uses = self._uses[ip.version]
            value = int(ip)
            use = uses.get(value)
            space = space_of[ip.version]
            if use is None:
                use = _Use(pool=alloc.pool, key=alloc.key)
                uses[value] = use
                space.used.add(value)
                space.in_use += 1
                self._index_shared(space, alloc.key, value)
            elif use.key != alloc.key:
                # the last Service assigned sets the address's key (MetalLB's sharingKeyForIP)
                self._unindex_shared(space, use.key, value)
                use.key = alloc.key
                self._index_shared(space, alloc.key, value)
            use.services.add(key)
            for port in alloc.ports:
                use.ports[port] = key

    @staticmethod
    def _index_shared(space: _Space, key: SharingKey, value: int) -> None:
        if key.sharing:
            insort(space.shareable.setdefault(key, []), value)

    @staticmethod
    def _unindex_shared(space: _Space, key: SharingKey, value: int) -> None:
        listed = space.shareable.get(key)
        if not listed:
            return
        i = bisect_left(listed, value)
        if i < len(listed) and listed[i] == value:
            del listed[i]
            if not listed:
                del space.shareable[key]

    # ----------------------------------------------------------------------------------- sharing checks
    def _check_sharing(self, key: str, ip: IPAddress, ports: Sequence[Port], sk: SharingKey) -> None:
        use = self._uses[ip.version].get(int(ip))
        if use is None:
            return
        if not _may_share(use.key, sk):
            # the only user may change its own key in place
            others = sorted(s for s in use.services if s != key)
            if others:
                raise AllocationError(
                    f"can't change sharing key for {go_quote(key)}, address also in use by {','.join(others)}"
                )
        for port in ports:
            holder = use.ports.get(port)
            if holder is not None and holder != key:
                raise AllocationError(f"port {port_text(port)} is already in use on {go_quote(str(ip))}")

    def _ports_free(self, version: int, value: int, key: str, ports: Sequence[Port]) -> bool:
        held = self._uses[version][value].ports
        return all(held.get(p, key) == key for p in ports)

    # --------------------------------------------------------------------------------------- assignment
    def assign(self, service: Service, ips: Sequence[IPAddress | None]) -> None:
        """Assign: give `ips` to the Service if configuration and sharing rules allow it."""
        key = service.key
        pool_name = self.pool_for_ips(ips)
        if pool_name is None:
            raise AllocationError(f"{go_quote_ips(ips)} is not allowed in config")
        if not self.is_compatible(pool_name, service):
            raise AllocationError(f"pool {pool_name} not compatible for ip assignment")
        if len(ips) > 2:
            raise AllocationError(f"more than two addresses {go_quote_ips(ips)}")
        checked = [ip for ip in ips if ip is not None]
        if len(checked) == 2 and checked[0].version == checked[1].version:
            raise AllocationError(f"{go_quote(str(checked[0]))} {go_quote(str(checked[1]))} has the same family")
        ports = service_keys.ports(service)
        sk = service_keys.sharing_key(service)
        for ip in checked:
            self._check_sharing(key, ip, ports, sk)
        self._record(key, _Allocation(pool=pool_name, ips=tuple(checked), ports=ports, key=sk))

    def _lowest_candidate(
        self, space: _Space, version: int, key: str, ports: Sequence[Port], sk: SharingKey
    ) -> int | None:
        """getIPFromCIDR over the pool's ranges of one family: the lowest address free or shareable by key."""
        own = [int(ip) for ip in self.ips_of(key) if ip.version == version]
        for first, last in space.ranges:
            best = space.used.lowest_free(first, last)
            shared = space.shareable.get(sk) if sk.sharing else None
            if shared:
                i = bisect_left(shared, first)
                while i < len(shared) and shared[i] <= last and (best is None or shared[i] < best):
                    if self._ports_free(version, shared[i], key, ports):
                        best = shared[i]
                        break
                    i += 1
            for value in own:
                if first <= value <= last and (best is None or value < best):
                    ip = ipaddress.IPv6Address(value) if version == 6 else ipaddress.IPv4Address(value)
                    try:
                        self._check_sharing(key, ip, ports, sk)
                    except AllocationError:
                        continue
                    best = value
            if best is not None:
                return best
        return None

    def _free_ips(self, state: _PoolState, versions: Iterable[int], service: Service) -> dict[int, IPAddress]:
        """getFreeIPsFromPool for the families asked for."""
        key = service.key
        ports = service_keys.ports(service)
        sk = service_keys.sharing_key(service)
        found: dict[int, IPAddress] = {}
        for version in versions:
            space = state.spaces.get(version)
            if space is None:
                continue
            value = self._lowest_candidate(space, version, key, ports, sk)
            if value is not None:
                found[version] = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
        return found

    @staticmethod
    def _versions_for(family: Family) -> tuple[int, ...]:
        return (4, 6) if family is Family.DUAL else (_FAMILY_VERSION[family],)

    @staticmethod
    def _select(pool_name: str, found: Mapping[int, IPAddress], family: Family, policy: str) -> list[IPAddress | None]:
        """selectIPsForFamilyAndPolicy; a single-family Service gets [None] when the pool has nothing free,
        which Assign then refuses, as in MetalLB."""
        v4, v6 = found.get(4), found.get(6)
        if family is Family.IPV4:
            return [v4]
        if family is Family.IPV6:
            return [v6]
        if policy in ("RequireDualStack", "PreferDualStack") and v4 is not None and v6 is not None:
            return [v4, v6]
        if policy == "PreferDualStack" and (v4 is not None or v6 is not None):
            return [v4] if v4 is not None else [v6]
        raise AllocationError(f"no available IPs in pool {pool_name} for {family} IPFamily")

    def _best_pool(
        self, states: Sequence[_PoolState], service: Service, family: Family
    ) -> tuple[str, dict[int, IPAddress]]:
        """findBestPoolForService."""
        primary, secondary = 4, 6
        first = parse_ip(service.cluster_ips[0]) if service.cluster_ips else None
        if first is not None and first.version == 6:
            primary, secondary = 6, 4  # spec.ipFamilies[0] is the family of clusterIPs[0]
        prefer_dual = service_keys.family_policy(service) == "PreferDualStack" and family is Family.DUAL
        primary_candidate: tuple[str, dict[int, IPAddress]] | None = None
        secondary_candidate: tuple[str, dict[int, IPAddress]] | None = None
        versions = self._versions_for(family)
        for state in states:
            found = self._free_ips(state, versions, service)
            if family is not Family.DUAL and _FAMILY_VERSION[family] in found:
                return state.pool.name, found
            if primary in found and secondary in found:
                return state.pool.name, found
            if not prefer_dual:
                continue
            if primary in found and primary_candidate is None:
                primary_candidate = (state.pool.name, found)
            if secondary in found and secondary_candidate is None:
                secondary_candidate = (state.pool.name, found)
        if primary_candidate is not None:
            return primary_candidate
        if secondary_candidate is not None:
            return secondary_candidate
        raise AllocationError(f"no suitable pool for {family} IPFamily")

    def _pinned_pools(self, service: Service) -> list[_PoolState]:
        """Pools whose serviceAllocation selects the Service, by priority."""
        pinned = [
            state
            for name, state in self._pools.items()
            if state.pool.service_allocation is not None
            and state.pool.auto_assign
            and (state.namespaces or state.pool.service_allocation.service_selectors)
            and self.is_compatible(name, service)
        ]
        return sorted(pinned, key=_sort_key_priority)

    def _open_pools(self) -> list[_PoolState]:
        """autoAssign pools without serviceAllocation."""
        return sorted(
            (s for s in self._pools.values() if s.pool.auto_assign and s.pool.service_allocation is None),
            key=lambda s: s.pool.name,
        )

    def _allocate_from(self, states: Sequence[_PoolState], service: Service, family: Family) -> list[IPAddress]:
        try:
            pool_name, found = self._best_pool(states, service, family)
            ips = self._select(pool_name, found, family, service_keys.family_policy(service))
            self.assign(service, ips)
        except AllocationError:
            raise AllocationError("no available IPs") from None
        return [ip for ip in ips if ip is not None]

    def allocate(self, service: Service, family: Family) -> list[IPAddress]:
        """Allocate: the pinned pools by priority, then the open autoAssign pools."""
        existing = self._allocs.get(service.key)
        if existing is not None:
            self.assign(service, existing.ips)
            return list(existing.ips)
        for states in (self._pinned_pools(service), self._open_pools()):
            try:
                return self._allocate_from(states, service, family)
            except AllocationError:
                continue
        raise AllocationError("no available IPs")

    def allocate_from_pool(self, service: Service, family: Family, pool_name: str) -> list[IPAddress]:
        """AllocateFromPool: the pool named by metallb.io/address-pool, autoAssign or not."""
        existing = self._allocs.get(service.key)
        if existing is not None:
            try:
                existing_family = for_ips(existing.ips)
            except FamilyError as err:
                raise AllocationError(str(err)) from None
            if service_keys.family_policy(service) != "PreferDualStack" and existing_family != family:
                raise AllocationError(f"IP for wrong family assigned alloc {existing_family} service family {family}")
            self.assign(service, existing.ips)
            return list(existing.ips)
        state = self._pools.get(pool_name)
        if state is None:
            raise AllocationError(f"unknown pool {go_quote(pool_name)}")
        found = self._free_ips(state, self._versions_for(family), service)
        ips = self._select(pool_name, found, family, service_keys.family_policy(service))
        self.assign(service, ips)
        return [ip for ip in ips if ip is not None]

    def allocate_additional_family(self, service: Service, existing: IPAddress, pool_name: str) -> IPAddress:
        """AllocateFromPoolForAdditionalFamily: PreferDualStack with one address gets the other family too."""
        state = self._pools.get(pool_name)
        if state is None:
            raise AllocationError(f"unknown pool {go_quote(pool_name)}")
        additional = Family.IPV6 if existing.version == 4 else Family.IPV4
        found = self._free_ips(state, self._versions_for(additional), service)
        new = self._select(pool_name, found, additional, "SingleStack")[0]
        self.assign(service, [existing, new])
        assert new is not None  # assign refuses a missing address
        return new

    def allocate_for_service(self, service: Service) -> list[IPAddress]:
        """The controller's allocateIPs: requested addresses, else the requested pool, else any pool."""
        if not service.cluster_ips:
            raise AllocationError(f"invalid ClusterIPs [{go_list(service.cluster_ips)}] [], can't determine family")
        try:
            family = service_keys.service_family(service)
            wanted, wanted_family = service_keys.desired_ips(service)
        except ValueError as err:
            raise AllocationError(str(err)) from None
        pool_name = service_keys.desired_pool(service)
        if wanted:
            if family != wanted_family:
                raise AllocationError(
                    f"requested loadBalancer IP(s) {go_quote_ips(wanted)} does not match the ipFamily of the service"
                )
            self.assign(service, wanted)
            if pool_name and self.pool_of(service.key) != pool_name:
                self.release(service.key)
                raise AllocationError(
                    f"requested loadBalancer IP(s) {go_quote_ips(wanted)} is not compatible with "
                    f"requested address pool {pool_name}"
                )
            return list(wanted)
        if pool_name:
            return self.allocate_from_pool(service, family, pool_name)
        return self.allocate(service, family)


def _may_share(existing: SharingKey, new: SharingKey) -> bool:
    """sharingOK: both Services allow sharing, under the same sharing key and the same backend key."""
    return bool(existing.sharing) and existing == new


__all__ = ["AllocationError", "Allocator", "PoolCounters"]
