"""One test per validation rule of parse_config, each asserting the exact message a user sees."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_fast.config import ConfigError, config_problems, parse_config

Obj = dict[str, Any]


def obj(kind: str, name: str | None, spec: Obj, version: str = "v1beta1", labels: Obj | None = None) -> Obj:
    metadata: Obj = {"namespace": "metallb-system"}
    if name is not None:
        metadata["name"] = name
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": metadata, "spec": spec}


def pool(name: str | None, *addresses: str, **spec: Any) -> Obj:
    return obj("IPAddressPool", name, {"addresses": list(addresses), **spec})


def l2(name: str, **spec: Any) -> Obj:
    return obj("L2Advertisement", name, spec)


def bgp_adv(name: str, **spec: Any) -> Obj:
    return obj("BGPAdvertisement", name, spec)


def peer(name: str, version: str = "v1beta2", **spec: Any) -> Obj:
    base: Obj = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.254"}
    base.update(spec)
    return obj("BGPPeer", name, {k: v for k, v in base.items() if v is not None}, version)


def bfd(name: str, **spec: Any) -> Obj:
    return obj("BFDProfile", name, spec)


def community(name: str, *aliases: tuple[str, str]) -> Obj:
    return obj("Community", name, {"communities": [{"name": n, "value": v} for n, v in aliases]})


def selector_with(expression: Obj) -> Obj:
    return {"matchExpressions": [expression]}


P4 = pool("p4", "192.0.2.0/24")
P6 = pool("p6", "2001:db8::/64")

# (rule id, objects, the exact messages expected, in order)
CASES: list[tuple[str, list[Obj], list[str]]] = [
    # ---------------------------------------------------------------- IPAddressPool
    ("pool-no-name", [pool(None, "192.0.2.0/24")], ["IPAddressPool (unnamed, object #1): metadata.name: is required"]),
    (
        "pool-no-addresses",
        [obj("IPAddressPool", "p", {})],
        ['IPAddressPool "p": spec.addresses: is required: at least one CIDR or a-b range'],
    ),
    (
        "pool-empty-addresses",
        [pool("p")],
        ['IPAddressPool "p": spec.addresses: is required: at least one CIDR or a-b range'],
    ),
    (
        "pool-bare-address",
        [pool("pool-a", "192.0.2.0/28", "192.0.2.10")],
        [
            'IPAddressPool "pool-a": spec.addresses[1] "192.0.2.10": not a CIDR or an a-b range '
            "(a single address needs a /32 or /128 mask)"
        ],
    ),
    (
        "pool-bare-ipv6-address",
        [pool("pool-a", "2001:db8::1")],
        [
            'IPAddressPool "pool-a": spec.addresses[0] "2001:db8::1": not a CIDR or an a-b range '
            "(a single address needs a /32 or /128 mask)"
        ],
    ),
    ("pool-garbage", [pool("p", "pool")], ['IPAddressPool "p": spec.addresses[0] "pool": not a CIDR or an a-b range']),
    (
        "pool-netmask-suffix",
        [pool("p", "192.0.2.0/255.255.255.0")],
        [
            'IPAddressPool "p": spec.addresses[0] "192.0.2.0/255.255.255.0": not a CIDR or an a-b range '
            "(the prefix length must be a decimal number)"
        ],
    ),
    (
        "pool-prefix-too-long",
        [pool("p", "192.0.2.0/33")],
        ['IPAddressPool "p": spec.addresses[0] "192.0.2.0/33": prefix length /33 is longer than 32 bits'],
    ),
    (
        "pool-scoped-ipv6",
        [pool("p", "fe80::1%eth0/128")],
        ['IPAddressPool "p": spec.addresses[0] "fe80::1%eth0/128": not a CIDR or an a-b range'],
    ),
    (
        "pool-cidr-with-spaces",
        [pool("p", " 192.0.2.0/24")],
        [
            'IPAddressPool "p": spec.addresses[0] " 192.0.2.0/24": not a CIDR or an a-b range '
            "(spaces are allowed only around the ends of an a-b range)"
        ],
    ),
    (
        "pool-range-bad-start",
        [pool("p", "192.0.2.x-192.0.2.5")],
        ['IPAddressPool "p": spec.addresses[0] "192.0.2.x-192.0.2.5": invalid start address "192.0.2.x" in a-b range'],
    ),
    (
        "pool-range-bad-end",
        [pool("p", "192.0.2.1 - 192.0.2.0/24")],
        [
            'IPAddressPool "p": spec.addresses[0] "192.0.2.1 - 192.0.2.0/24": '
            'invalid end address "192.0.2.0/24" in a-b range'
        ],
    ),
    (
        "pool-range-start-after-end",
        [pool("p", "192.0.2.20-192.0.2.10")],
        [
            'IPAddressPool "p": spec.addresses[0] "192.0.2.20-192.0.2.10"'
            ": range start 192.0.2.20 is after its end 192.0.2.10"
        ],
    ),
    (
        "pool-range-mixed-families",
        [pool("p", "192.0.2.1-2001:db8::1")],
        [
            'IPAddressPool "p": spec.addresses[0] "192.0.2.1-2001:db8::1": '
            "range start 192.0.2.1 and end 2001:db8::1 are of different IP families"
        ],
    ),
    (
        "pool-duplicate-name",
        [pool("p", "192.0.2.0/26"), pool("p", "192.0.2.64/26")],
        ['IPAddressPool "p": metadata.name "p": duplicate IPAddressPool name (object #1 has it too)'],
    ),
    (
        "pool-overlap-within-pool",
        [pool("p", "192.0.2.0/24", "192.0.2.100-192.0.2.110")],
        [
            'IPAddressPool "p": spec.addresses[1] "192.0.2.100-192.0.2.110": '
            "overlaps 192.0.2.0/24 (spec.addresses[0] of this pool)"
        ],
    ),
    (
        "pool-overlap-across-pools",
        [pool("pool-a", "192.0.2.0/25"), pool("pool-b", "198.51.100.0/24", "192.0.2.64/26")],
        [
            'IPAddressPool "pool-b": spec.addresses[1] "192.0.2.64/26": '
            'overlaps 192.0.2.0/25 (spec.addresses[0] of IPAddressPool "pool-a")'
        ],
    ),
    (
        "pool-overlap-ranges-touching-one-address",
        [pool("a", "192.0.2.1-192.0.2.10"), pool("b", "192.0.2.10 - 192.0.2.20")],
        [
            'IPAddressPool "b": spec.addresses[0] "192.0.2.10 - 192.0.2.20": '
            'overlaps 192.0.2.1-192.0.2.10 (spec.addresses[0] of IPAddressPool "a")'
        ],
    ),
    (
        "pool-overlap-ipv6",
        [pool("a", "2001:db8::/64"), pool("b", "2001:db8::ff/128")],
        [
            'IPAddressPool "b": spec.addresses[0] "2001:db8::ff/128": '
            'overlaps 2001:db8::/64 (spec.addresses[0] of IPAddressPool "a")'
        ],
    ),
    (
        "pool-service-allocation-duplicate-namespace",
        [pool("p", "192.0.2.0/24", serviceAllocation={"namespaces": ["a", "b", "a"]})],
        [
            'IPAddressPool "p": spec.serviceAllocation.namespaces[2] "a": '
            "duplicate namespace (already at spec.serviceAllocation.namespaces[0])"
        ],
    ),
    (
        "pool-service-allocation-duplicate-selector",
        [
            pool(
                "p",
                "192.0.2.0/24",
                serviceAllocation={"serviceSelectors": [{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "1"}}]},
            )
        ],
        [
            'IPAddressPool "p": spec.serviceAllocation.serviceSelectors[1]: '
            "duplicate selector (same as spec.serviceAllocation.serviceSelectors[0])"
        ],
    ),
    (
        "pool-service-allocation-invalid-selector",
        [
            pool(
                "p",
                "192.0.2.0/24",
                serviceAllocation={"namespaceSelectors": [selector_with({"key": "team", "operator": "In"})]},
            )
        ],
        [
            'IPAddressPool "p": spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].values: '
            "operator In needs at least one value"
        ],
    ),
    (
        "pool-wrong-types",
        [obj("IPAddressPool", "p", {"addresses": "192.0.2.0/24", "autoAssign": "yes"})],
        [
            'IPAddressPool "p": spec.addresses "192.0.2.0/24": must be a list of strings',
            'IPAddressPool "p": spec.autoAssign "yes": must be true or false',
        ],
    ),
    # ---------------------------------------------------------------- label selectors (any selector field)
    (
        "selector-bad-operator",
        [l2("l", nodeSelectors=[selector_with({"key": "a", "operator": "Gt", "values": ["1"]})])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].operator "Gt": '
            "not a label selector operator (In, NotIn, Exists, DoesNotExist)"
        ],
    ),
    (
        "selector-notin-without-values",
        [l2("l", nodeSelectors=[selector_with({"key": "a", "operator": "NotIn", "values": []})])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].values'
            ": operator NotIn needs at least one value"
        ],
    ),
    (
        "selector-exists-with-values",
        [l2("l", serviceSelectors=[selector_with({"key": "a", "operator": "Exists", "values": ["x"]})])],
        [
            'L2Advertisement "l": spec.serviceSelectors[0].matchExpressions[0].values ["x"]'
            ": operator Exists takes no values"
        ],
    ),
    (
        "selector-doesnotexist-with-values",
        [l2("l", serviceSelectors=[selector_with({"key": "a", "operator": "DoesNotExist", "values": ["x"]})])],
        [
            'L2Advertisement "l": spec.serviceSelectors[0].matchExpressions[0].values ["x"]: '
            "operator DoesNotExist takes no values"
        ],
    ),
    (
        "selector-invalid-key",
        [l2("l", nodeSelectors=[{"matchLabels": {"bad key": "x"}}])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchLabels.bad key "x": not a valid label key: the name part '
            "must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending alphanumeric"
        ],
    ),
    (
        "selector-invalid-key-prefix",
        [l2("l", nodeSelectors=[selector_with({"key": "Example.COM/zone", "operator": "Exists"})])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].key "Example.COM/zone": not a valid label '
            "key: the prefix must be a lowercase DNS subdomain of at most 253 characters"
        ],
    ),
    (
        "selector-invalid-value",
        [l2("l", nodeSelectors=[selector_with({"key": "zone", "operator": "In", "values": ["-a"]})])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].values[0] "-a": not a valid label value: '
            "it must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending alphanumeric"
        ],
    ),
    (
        "selector-invalid-matchlabels-value",
        [l2("l", nodeSelectors=[{"matchLabels": {"zone": "x" * 64}}])],
        [
            f'L2Advertisement "l": spec.nodeSelectors[0].matchLabels.zone "{"x" * 64}": not a valid label value: '
            "it must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending alphanumeric"
        ],
    ),
    (
        "selector-missing-key",
        [l2("l", nodeSelectors=[selector_with({"operator": "Exists"})])],
        ['L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].key: is required'],
    ),
    (
        "selector-duplicate-value",
        [l2("l", nodeSelectors=[selector_with({"key": "a", "operator": "In", "values": ["x", "y", "x"]})])],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[0].values[2] "x": '
            "duplicate value (already at spec.nodeSelectors[0].matchExpressions[0].values[0])"
        ],
    ),
    (
        "selector-duplicate-expression",
        [
            l2(
                "l",
                nodeSelectors=[
                    {
                        "matchExpressions": [
                            {"key": "a", "operator": "In", "values": ["x", "y"]},
                            {"key": "a", "operator": "In", "values": ["y", "x"]},
                        ]
                    }
                ],
            )
        ],
        [
            'L2Advertisement "l": spec.nodeSelectors[0].matchExpressions[1]: '
            "duplicate match expression (same as spec.nodeSelectors[0].matchExpressions[0])"
        ],
    ),
    # ---------------------------------------------------------------- L2Advertisement
    (
        "l2-duplicate-pool",
        [P4, l2("l", ipAddressPools=["p4", "p4"])],
        ['L2Advertisement "l": spec.ipAddressPools[1] "p4": duplicate pool name (already at spec.ipAddressPools[0])'],
    ),
    (
        "l2-duplicate-interface",
        [P4, l2("l", interfaces=["eth0", "eth1", "eth0"])],
        ['L2Advertisement "l": spec.interfaces[2] "eth0": duplicate interface (already at spec.interfaces[0])'],
    ),
    (
        "l2-duplicate-node-selector",
        [l2("l", nodeSelectors=[{"matchLabels": {"a": "1", "b": "2"}}, {"matchLabels": {"b": "2", "a": "1"}}])],
        ['L2Advertisement "l": spec.nodeSelectors[1]: duplicate selector (same as spec.nodeSelectors[0])'],
    ),
    (
        "l2-duplicate-pool-selector",
        [l2("l", ipAddressPoolSelectors=[{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "1"}}])],
        [
            'L2Advertisement "l": spec.ipAddressPoolSelectors[1]'
            ": duplicate selector (same as spec.ipAddressPoolSelectors[0])"
        ],
    ),
    (
        "l2-preferred-weight-out-of-range",
        [l2("l", preferredNodeSelectors=[{"weight": 101, "preference": {"matchLabels": {"a": "1"}}}])],
        ['L2Advertisement "l": spec.preferredNodeSelectors[0].weight 101: must be between 1 and 100'],
    ),
    (
        "l2-names-missing-pool-is-accepted",
        [P4, l2("l", ipAddressPools=["p4", "not-there"])],
        [],
    ),
    # ---------------------------------------------------------------- BGPAdvertisement
    (
        "bgp-duplicate-pool",
        [P4, bgp_adv("b", ipAddressPools=["p4", "p4"])],
        ['BGPAdvertisement "b": spec.ipAddressPools[1] "p4": duplicate pool name (already at spec.ipAddressPools[0])'],
    ),
    (
        "bgp-duplicate-peer",
        [bgp_adv("b", peers=["r1", "r2", "r1"])],
        ['BGPAdvertisement "b": spec.peers[2] "r1": duplicate peer name (already at spec.peers[0])'],
    ),
    (
        "bgp-duplicate-community",
        [bgp_adv("b", communities=["65535:1", "65535:1"])],
        ['BGPAdvertisement "b": spec.communities[1] "65535:1": duplicate community (already at spec.communities[0])'],
    ),
    (
        "bgp-duplicate-node-selector",
        [bgp_adv("b", nodeSelectors=[{}, {}])],
        ['BGPAdvertisement "b": spec.nodeSelectors[1]: duplicate selector (same as spec.nodeSelectors[0])'],
    ),
    (
        "bgp-invalid-service-selector",
        [bgp_adv("b", serviceSelectors=[selector_with({"key": "app", "operator": "Exists", "values": ["web"]})])],
        [
            'BGPAdvertisement "b": spec.serviceSelectors[0].matchExpressions[0].values ["web"]'
            ": operator Exists takes no values"
        ],
    ),
    (
        "bgp-aggregation-length-above-32",
        [bgp_adv("b", aggregationLength=33)],
        ['BGPAdvertisement "b": spec.aggregationLength 33: must be between 1 and 32'],
    ),
    (
        "bgp-aggregation-length-zero",
        [bgp_adv("b", aggregationLength=0)],
        ['BGPAdvertisement "b": spec.aggregationLength 0: must be between 1 and 32'],
    ),
    (
        "bgp-aggregation-length-v6-above-128",
        [bgp_adv("b", aggregationLengthV6=129)],
        ['BGPAdvertisement "b": spec.aggregationLengthV6 129: must be at most 128'],
    ),
    (
        "bgp-aggregation-shorter-than-pool-cidr",
        [pool("p", "192.0.2.0/26"), bgp_adv("b", aggregationLength=24)],
        [
            'BGPAdvertisement "b": spec.aggregationLength 24: is shorter than the /26 prefix of "192.0.2.0/26" in '
            'IPAddressPool "p" (the route would cover addresses outside the pool; use 26 or more)'
        ],
    ),
    (
        # 192.0.2.10-192.0.2.20 is .10/31 .12/30 .16/30 .20/32: its shortest prefix is /30 (MetalLB's lowestMask).
        "bgp-aggregation-shorter-than-pool-range",
        [pool("p", "192.0.2.10-192.0.2.20"), bgp_adv("b", ipAddressPools=["p"], aggregationLength=29)],
        [
            'BGPAdvertisement "b": spec.aggregationLength 29: is shorter than the /30 prefix of '
            '"192.0.2.10-192.0.2.20" in IPAddressPool "p" (the route would cover addresses outside the pool; '
            "use 30 or more)"
        ],
    ),
    (
        "bgp-aggregation-shorter-than-pool-ipv6",
        [P6, bgp_adv("b", aggregationLengthV6=48)],
        [
            'BGPAdvertisement "b": spec.aggregationLengthV6 48: is shorter than the /64 prefix of "2001:db8::/64" '
            'in IPAddressPool "p6" (the route would cover addresses outside the pool; use 64 or more)'
        ],
    ),
    (
        "bgp-aggregation-only-checked-on-selected-pools",
        [
            pool("p", "192.0.2.0/26"),
            pool("q", "192.0.2.64/26"),
            bgp_adv("b", ipAddressPools=["zzz"], aggregationLength=24),
        ],
        [],
    ),
    (
        "bgp-service-selectors-with-aggregation",
        [bgp_adv("b", aggregationLength=30, serviceSelectors=[{"matchLabels": {"app": "web"}}])],
        ['BGPAdvertisement "b": spec.aggregationLength 30: must stay 32 (the default) when serviceSelectors are set'],
    ),
    (
        "bgp-conflicting-local-pref",
        [P4, bgp_adv("a", localPref=100), bgp_adv("b", localPref=200)],
        [
            'BGPAdvertisement "b": spec.localPref 200: conflicts with localPref 100 of BGPAdvertisement "a" for '
            'IPAddressPool "p4": both announce the same routes (same aggregation length, overlapping peers and nodes)'
        ],
    ),
    (
        "bgp-conflicting-local-pref-unset-is-0",
        [P4, bgp_adv("a"), bgp_adv("b", localPref=200, nodeSelectors=[{"matchLabels": {"rack": "1"}}])],
        [
            'BGPAdvertisement "b": spec.localPref 200: conflicts with localPref 0 of BGPAdvertisement "a" for '
            'IPAddressPool "p4": both announce the same routes (same aggregation length, overlapping peers and nodes)'
        ],
    ),
    (
        "bgp-local-pref-different-aggregation-is-fine",
        [P4, bgp_adv("a", localPref=100), bgp_adv("b", localPref=200, aggregationLength=24)],
        [],
    ),
    (
        "bgp-local-pref-disjoint-peers-is-fine",
        [P4, bgp_adv("a", localPref=100, peers=["r1"]), bgp_adv("b", localPref=200, peers=["r2"])],
        [],
    ),
    (
        "bgp-local-pref-disjoint-nodes-is-fine",
        [
            P4,
            bgp_adv("a", localPref=100, nodeSelectors=[{"matchLabels": {"rack": "1"}}]),
            bgp_adv("b", localPref=200, nodeSelectors=[{"matchLabels": {"rack": "2"}}]),
        ],
        [],
    ),
    (
        "bgp-local-pref-disjoint-pools-is-fine",
        [
            P4,
            P6,
            bgp_adv("a", localPref=100, ipAddressPools=["p4"]),
            bgp_adv("b", localPref=200, ipAddressPools=["p6"]),
        ],
        [],
    ),
    (
        "bgp-local-pref-with-service-selectors-is-not-checked",
        [P4, bgp_adv("a", localPref=100), bgp_adv("b", localPref=200, serviceSelectors=[{"matchLabels": {"a": "b"}}])],
        [],
    ),
    (
        # With the cluster's Nodes given, MetalLB's webhook compares the nodes each advertisement selects.
        "bgp-local-pref-uses-nodes-when-given",
        [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"rack": "1", "gpu": "yes"}}},
            P4,
            bgp_adv("a", localPref=100, nodeSelectors=[{"matchLabels": {"rack": "1"}}]),
            bgp_adv("b", localPref=200, nodeSelectors=[{"matchLabels": {"rack": "2"}}]),
            bgp_adv("c", localPref=300, nodeSelectors=[{"matchLabels": {"gpu": "yes"}}]),
        ],
        [
            'BGPAdvertisement "c": spec.localPref 300: conflicts with localPref 100 of BGPAdvertisement "a" for '
            'IPAddressPool "p4": both announce the same routes (same aggregation length, overlapping peers and nodes)'
        ],
    ),
    (
        "bgp-community-16-bit",
        [bgp_adv("b", communities=["65536:1"])],
        ['BGPAdvertisement "b": spec.communities[0] "65536:1": a:b community needs two numbers from 0 to 65535'],
    ),
    (
        "bgp-community-not-a-number",
        [bgp_adv("b", communities=["+1:1"])],
        ['BGPAdvertisement "b": spec.communities[0] "+1:1": a:b community needs two numbers from 0 to 65535'],
    ),
    (
        "bgp-large-community-32-bit",
        [bgp_adv("b", communities=["large:1:2:4294967296"])],
        [
            'BGPAdvertisement "b": spec.communities[0] "large:1:2:4294967296": '
            "large:a:b:c community needs three numbers from 0 to 4294967295"
        ],
    ),
    (
        "bgp-four-part-community-not-large",
        [bgp_adv("b", communities=["huge:1:2:3"])],
        ['BGPAdvertisement "b": spec.communities[0] "huge:1:2:3": a four-part community must be "large:a:b:c"'],
    ),
    (
        "bgp-community-unknown-alias",
        [bgp_adv("b", communities=["no-advertise"])],
        [
            'BGPAdvertisement "b": spec.communities[0] "no-advertise": neither a community value ("a:b" or '
            '"large:a:b:c") nor the name of a Community alias'
        ],
    ),
    (
        "bgp-names-missing-pool-is-accepted",
        [bgp_adv("b", ipAddressPools=["later"])],
        [],
    ),
    # ---------------------------------------------------------------- Community
    (
        "community-invalid-value",
        [community("c", ("no-advertise", "65535:65282"), ("bad", "1:70000"))],
        ['Community "c": spec.communities[1].value "1:70000": a:b community needs two numbers from 0 to 65535'],
    ),
    (
        "community-duplicate-alias",
        [community("c1", ("x", "1:1")), community("c2", ("y", "2:2"), ("x", "3:3"))],
        ['Community "c2": spec.communities[1].name "x": duplicate community alias (already defined in Community "c1")'],
    ),
    # ---------------------------------------------------------------- BGPPeer
    ("peer-no-my-asn", [peer("r", myASN=None)], ['BGPPeer "r": spec.myASN: is required: the local AS number (not 0)']),
    ("peer-my-asn-zero", [peer("r", myASN=0)], ['BGPPeer "r": spec.myASN 0: is required: the local AS number (not 0)']),
    (
        "peer-asn-out-of-range",
        [peer("r", peerASN=4294967296)],
        ['BGPPeer "r": spec.peerASN 4294967296: must be between 0 and 4294967295'],
    ),
    (
        "peer-neither-asn-nor-dynamic",
        [peer("r", peerASN=None)],
        ['BGPPeer "r": spec.peerASN: is required: set peerASN or dynamicASN'],
    ),
    (
        "peer-both-asn-and-dynamic",
        [peer("r", dynamicASN="external")],
        ['BGPPeer "r": spec.dynamicASN "external": peerASN and dynamicASN are mutually exclusive'],
    ),
    (
        "peer-invalid-dynamic-asn",
        [peer("r", peerASN=None, dynamicASN="both")],
        ['BGPPeer "r": spec.dynamicASN "both": must be "internal" or "external"'],
    ),
    (
        "peer-neither-address-nor-interface",
        [peer("r", peerAddress=None)],
        ['BGPPeer "r": spec.peerAddress: is required: set peerAddress or interface'],
    ),
    (
        "peer-both-address-and-interface",
        [peer("r", interface="eth1")],
        ['BGPPeer "r": spec.interface "eth1": peerAddress and interface are mutually exclusive'],
    ),
    (
        "peer-ebgp-multihop-on-ibgp",
        [peer("r", peerASN=64500, ebgpMultiHop=True)],
        ['BGPPeer "r": spec.ebgpMultiHop true: not allowed on an iBGP session (peerASN = myASN = 64500)'],
    ),
    (
        "peer-hold-time-under-3s",
        [peer("r", holdTime="2s")],
        ['BGPPeer "r": spec.holdTime "2s": must be 0 or at least 3s'],
    ),
    (
        "peer-hold-time-truncated-to-seconds",  # MetalLB truncates 2.9s to 2s before comparing
        [peer("r", holdTime="2900ms")],
        ['BGPPeer "r": spec.holdTime "2900ms": must be 0 or at least 3s'],
    ),
    (
        "peer-keepalive-alone-gives-short-hold",
        [peer("r", keepaliveTime="500ms")],
        [
            'BGPPeer "r": spec.keepaliveTime "500ms": gives a hold time of 1.5s (3 x keepaliveTime); '
            "the hold time must be 0 or at least 3s"
        ],
    ),
    (
        "peer-keepalive-above-hold",
        [peer("r", holdTime="30s", keepaliveTime="1m")],
        ['BGPPeer "r": spec.keepaliveTime "1m": must not be longer than the hold time (30s)'],
    ),
    (
        "peer-duration-not-go-syntax",
        [peer("r", holdTime="90")],
        [
            'BGPPeer "r": spec.holdTime "90": not a Go duration (a number with a unit: "90s", "1m30s", "500ms"; '
            "units ns, us, ms, s, m, h)"
        ],
    ),
    (
        "peer-duration-not-a-string",
        [peer("r", keepaliveTime=30)],
        ['BGPPeer "r": spec.keepaliveTime 30: must be a string'],
    ),
    (
        "peer-invalid-address",
        [peer("r", peerAddress="192.0.2.300")],
        ['BGPPeer "r": spec.peerAddress "192.0.2.300": not an IP address'],
    ),
    (
        "peer-invalid-scoped-address",
        [peer("r", peerAddress="fe80::1%eth0")],
        ['BGPPeer "r": spec.peerAddress "fe80::1%eth0": not an IP address'],
    ),
    (
        "peer-invalid-source-address",
        [peer("r", sourceAddress="me")],
        ['BGPPeer "r": spec.sourceAddress "me": not an IP address'],
    ),
    (
        "peer-invalid-router-id",
        [peer("r", routerID="10.0.0")],
        ['BGPPeer "r": spec.routerID "10.0.0": not an IP address'],
    ),
    (
        "peer-password-and-secret",
        [peer("r", password="s3cret", passwordSecret={"name": "bgp-auth", "namespace": "metallb-system"})],
        ['BGPPeer "r": spec.passwordSecret "bgp-auth": password and passwordSecret are mutually exclusive'],
    ),
    (
        "peer-password-line-break",
        [peer("r", password="a\nneighbor 1.2.3.4 remote-as 1")],
        ['BGPPeer "r": spec.password "<hidden>": must not contain line breaks'],
    ),
    (
        "peer-password-never-shown",
        [peer("r", password=123456)],
        ['BGPPeer "r": spec.password "<hidden>": must be a string'],
    ),
    (
        "peer-connect-time-fraction",
        [peer("r", connectTime="1500ms")],
        ['BGPPeer "r": spec.connectTime "1500ms": must be a whole number of seconds'],
    ),
    (
        "peer-connect-time-range",
        [peer("r", connectTime="19h")],
        ['BGPPeer "r": spec.connectTime "19h": must be between 1s and 65535s'],
    ),
    ("peer-port-zero-v1beta2", [peer("r", peerPort=0)], ['BGPPeer "r": spec.peerPort 0: must be between 1 and 16384']),
    (
        "peer-missing-bfd-profile",
        [peer("r", bfdProfile="fast")],
        ['BGPPeer "r": spec.bfdProfile "fast": no BFDProfile has this name'],
    ),
    (
        "peer-duplicate-name-across-versions",
        [peer("r", "v1beta1"), peer("r", peerAddress="192.0.2.253")],
        ['BGPPeer "r": metadata.name "r": duplicate BGPPeer name (object #1 has it too)'],
    ),
    (
        "peer-duplicate-node-selector",
        [peer("r", nodeSelectors=[{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "1"}}])],
        ['BGPPeer "r": spec.nodeSelectors[1]: duplicate selector (same as spec.nodeSelectors[0])'],
    ),
    (
        "peer-v1beta1-selector-values-required",
        [peer("r", "v1beta1", nodeSelectors=[selector_with({"key": "a", "operator": "Exists"})])],
        [
            'BGPPeer "r": spec.nodeSelectors[0].matchExpressions[0].values'
            ": is required with at least one value in BGPPeer v1beta1"
        ],
    ),
    # ---------------------------------------------------------------- BFDProfile
    ("bfd-no-name", [obj("BFDProfile", None, {})], ["BFDProfile (unnamed, object #1): metadata.name: is required"]),
    (
        "bfd-receive-interval-low",
        [bfd("f", receiveInterval=9)],
        ['BFDProfile "f": spec.receiveInterval 9: must be between 10 and 60000'],
    ),
    (
        "bfd-transmit-interval-high",
        [bfd("f", transmitInterval=60001)],
        ['BFDProfile "f": spec.transmitInterval 60001: must be between 10 and 60000'],
    ),
    (
        "bfd-echo-interval-low",
        [bfd("f", echoInterval=5)],
        ['BFDProfile "f": spec.echoInterval 5: must be between 10 and 60000'],
    ),
    (
        "bfd-detect-multiplier-low",
        [bfd("f", detectMultiplier=1)],
        ['BFDProfile "f": spec.detectMultiplier 1: must be between 2 and 255'],
    ),
    (
        "bfd-detect-multiplier-high",
        [bfd("f", detectMultiplier=256)],
        ['BFDProfile "f": spec.detectMultiplier 256: must be between 2 and 255'],
    ),
    ("bfd-minimum-ttl-low", [bfd("f", minimumTtl=0)], ['BFDProfile "f": spec.minimumTtl 0: must be between 1 and 254']),
    (
        "bfd-minimum-ttl-high",
        [bfd("f", minimumTtl=255)],
        ['BFDProfile "f": spec.minimumTtl 255: must be between 1 and 254'],
    ),
    (
        "bfd-echo-with-ipv6-pool",
        [bfd("echo", echoMode=True), peer("r", bfdProfile="echo"), P6, bgp_adv("b", ipAddressPools=["p6"])],
        [
            'BGPAdvertisement "b": spec: advertises IPv6 IPAddressPool "p6" to BGPPeer "r" whose BFDProfile "echo" '
            "has echoMode on (BFD echo is not possible there)"
        ],
    ),
    (
        "bfd-echo-with-ipv4-pool-is-fine",
        [bfd("echo", echoMode=True), peer("r", bfdProfile="echo"), P4, bgp_adv("b")],
        [],
    ),
    # ---------------------------------------------------------------- documents
    (
        "object-name-syntax",
        [pool("Pool_A", "192.0.2.0/24")],
        [
            'IPAddressPool "Pool_A": metadata.name "Pool_A": not a valid object name: lowercase letters, digits, '
            "'-' and '.', starting and ending alphanumeric, at most 253 characters"
        ],
    ),
    (
        "object-label-syntax",
        [obj("IPAddressPool", "p", {"addresses": ["192.0.2.0/24"]}, labels={"tier": "prod!"})],
        [
            'IPAddressPool "p": metadata.labels.tier "prod!": not a valid label value: it must be at most 63 '
            "characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending alphanumeric"
        ],
    ),
    (
        "apiversion-not-served",
        [obj("IPAddressPool", "p", {"addresses": ["192.0.2.0/24"]}, version="v1beta2")],
        ['IPAddressPool "p": apiVersion "metallb.io/v1beta2": not served for IPAddressPool (use metallb.io/v1beta1)'],
    ),
]


@pytest.mark.parametrize(("objects", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_rule(objects: list[Obj], expected: list[str]) -> None:
    assert [str(p) for p in config_problems(objects)] == expected


def test_problem_fields_name_kind_field_value_and_rule() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config([pool("pool-a", "192.0.2.0/28", "192.0.2.10")])
    (problem,) = caught.value.problems
    assert (problem.kind, problem.name, problem.field, problem.value) == (
        "IPAddressPool",
        "pool-a",
        "spec.addresses[1]",
        "192.0.2.10",
    )
    assert problem.rule == "not a CIDR or an a-b range (a single address needs a /32 or /128 mask)"
    assert isinstance(caught.value, ValueError)


def test_every_problem_is_reported_at_once_in_manifest_order() -> None:
    objects = [
        peer("r", holdTime="1s"),
        pool("a", "192.0.2.0/24", "bogus"),
        pool("b", "192.0.2.128/25"),
        bfd("f", minimumTtl=0),
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(objects)
    assert [(p.kind, p.name, p.field) for p in caught.value.problems] == [
        ("BGPPeer", "r", "spec.holdTime"),
        ("IPAddressPool", "a", "spec.addresses[1]"),
        ("IPAddressPool", "b", "spec.addresses[0]"),
        ("BFDProfile", "f", "spec.minimumTtl"),
    ]
    assert str(caught.value).splitlines()[0] == "invalid metallb.io configuration (4 problems)"
