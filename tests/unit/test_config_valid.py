"""Valid configurations: what parse_config builds, the CRD defaults, v1beta1 vs v1beta2 peers, manifests."""

from __future__ import annotations

import ipaddress

import yaml

from metallb_fast.config import config_problems, parse_config
from metallb_fast.config.model import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    L2Advertisement,
    LabelSelector,
    Pool,
    PreferredNodeSelector,
    SecretReference,
    SelectorOperator,
    SelectorRequirement,
    ServiceAllocation,
)

L2_MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production
  namespace: metallb-system
  labels: {tier: prod}
spec:
  addresses:
  - 192.0.2.0/25
  - 198.51.100.10 - 198.51.100.20
  - 2001:db8:1::/64
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: staging, namespace: metallb-system}
spec:
  addresses: [192.0.2.128/25]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [staging, qa]
    namespaceSelectors:
    - matchLabels: {env: staging}
    serviceSelectors:
    - matchExpressions:
      - {key: app, operator: In, values: [web, api]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPoolSelectors:
  - matchLabels: {tier: prod}
  interfaces: [eth0, eth1]
  nodeSelectors:
  - matchExpressions:
    - {key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}
  preferredNodeSelectors:
  - weight: 50
    preference: {matchLabels: {zone: a}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer}
"""


def test_layer2_manifest_with_other_kinds() -> None:
    config = parse_config(yaml.safe_load_all(L2_MANIFEST))
    production, staging = config.pools
    assert production == Pool(
        name="production",
        ranges=production.ranges,
        labels=(("tier", "prod"),),
    )
    assert [(str(r.first), str(r.last), r.prefixlen, r.text) for r in production.ranges] == [
        ("192.0.2.0", "192.0.2.127", 25, "192.0.2.0/25"),
        ("198.51.100.10", "198.51.100.20", None, "198.51.100.10 - 198.51.100.20"),
        ("2001:db8:1::", "2001:db8:1:0:ffff:ffff:ffff:ffff", 64, "2001:db8:1::/64"),
    ]
    assert production.auto_assign and not production.avoid_buggy_ips and production.service_allocation is None
    assert (staging.auto_assign, staging.avoid_buggy_ips) == (False, True)
    assert staging.service_allocation == ServiceAllocation(
        priority=50,
        namespaces=("staging", "qa"),
        namespace_selectors=(LabelSelector(match_labels=(("env", "staging"),)),),
        service_selectors=(
            LabelSelector(match_expressions=(SelectorRequirement("app", SelectorOperator.IN, ("api", "web")),)),
        ),
    )
    (l2,) = config.l2_advertisements
    assert l2 == L2Advertisement(
        name="l2",
        ip_address_pool_selectors=(LabelSelector(match_labels=(("tier", "prod"),)),),
        node_selectors=(
            LabelSelector(
                match_expressions=(
                    SelectorRequirement("node-role.kubernetes.io/control-plane", SelectorOperator.DOES_NOT_EXIST),
                )
            ),
        ),
        interfaces=("eth0", "eth1"),
        preferred_node_selectors=(PreferredNodeSelector(50, LabelSelector(match_labels=(("zone", "a"),))),),
    )
    assert config.advertisement_selects_pool(l2, production)
    assert not config.advertisement_selects_pool(l2, staging)
    assert config.pool("staging") is staging
    holding = {str(ip): [p.name for p in config.pools if p.contains(ipaddress.ip_address(ip))]
               for ip in ("198.51.100.15", "198.51.100.21")}
    assert holding == {"198.51.100.15": ["production"], "198.51.100.21": []}


BGP_OBJECTS = [
    {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "Community",
        "metadata": {"name": "communities"},
        "spec": {"communities": [{"name": "no-advertise", "value": "65535:65282"}]},
    },
    {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BFDProfile",
        "metadata": {"name": "fast"},
        "spec": {"receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3, "minimumTtl": 254},
    },
    {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bgp-pool"},
        "spec": {"addresses": ["203.0.113.0/24"], "serviceAllocation": {"priority": 0}},
    },
    {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": "aggregated"},
        "spec": {
            "ipAddressPools": ["bgp-pool"],
            "aggregationLength": 24,
            "localPref": 100,
            "communities": ["no-advertise", "64500:0100", "large:64500:1:2", "65535:65282"],
            "peers": ["router-a"],
        },
    },
    {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "defaults"}, "spec": {}},
    {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": "router-a"},
        "spec": {
            "myASN": 64500,
            "peerASN": 64501,
            "peerAddress": "203.0.113.254",
            "sourceAddress": "203.0.113.1",
            "routerID": "10.0.0.1",
            "holdTime": "1m30s",
            "connectTime": "10s",
            "bfdProfile": "fast",
            "ebgpMultiHop": True,
            "passwordSecret": {"name": "bgp-auth", "namespace": "metallb-system"},
            "vrf": "red",
            "nodeSelectors": [{"matchLabels": {"bgp": "yes"}}],
            "enableGracefulRestart": True,
            "dualStackAddressFamily": True,
            "localASN": 64999,
        },
    },
    {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": "unnumbered"},
        "spec": {"myASN": 64500, "dynamicASN": "internal", "interface": "eth2", "keepaliveTime": "20s"},
    },
]


def test_bgp_objects_defaults_and_community_aliases() -> None:
    config = parse_config(BGP_OBJECTS)
    (pool,) = config.pools
    # MetalLB treats priority 0 as unset, and an allocation restricting nothing as selecting every Service.
    assert pool.service_allocation == ServiceAllocation(priority=None, service_selectors=(LabelSelector(),))
    aggregated, defaults = config.bgp_advertisements
    assert aggregated == BGPAdvertisement(
        name="aggregated",
        aggregation_length=24,
        aggregation_length_v6=128,
        local_pref=100,
        # Aliases resolve to values, numbers are canonical, and a value given twice collapses (MetalLB's set).
        communities=("65535:65282", "64500:100", "large:64500:1:2"),
        ip_address_pools=("bgp-pool",),
        peers=("router-a",),
    )
    assert defaults == BGPAdvertisement(name="defaults")
    assert (defaults.aggregation_length, defaults.aggregation_length_v6, defaults.local_pref) == (32, 128, None)
    router, unnumbered = config.bgp_peers
    assert router == BGPPeer(
        name="router-a",
        my_asn=64500,
        peer_asn=64501,
        peer_address="203.0.113.254",
        source_address="203.0.113.1",
        router_id="10.0.0.1",
        hold_time_seconds=90.0,
        keepalive_time_seconds=30.0,  # derived as MetalLB does: holdTime / 3
        connect_time_seconds=10.0,
        ebgp_multihop=True,
        bfd_profile="fast",
        password_secret=SecretReference("bgp-auth", "metallb-system"),
        node_selectors=(LabelSelector(match_labels=(("bgp", "yes"),)),),
        vrf="red",
        enable_graceful_restart=True,
        dual_stack_address_family=True,
        local_asn=64999,
    )
    assert router.peer_port == 179
    assert (unnumbered.peer_asn, unnumbered.dynamic_asn, unnumbered.interface) == (None, "internal", "eth2")
    assert (unnumbered.hold_time_seconds, unnumbered.keepalive_time_seconds) == (60.0, 20.0)  # hold = 3 x keepalive
    assert config.bfd_profiles == (
        BFDProfile(
            name="fast", receive_interval_ms=100, transmit_interval_ms=100, detect_multiplier=3, minimum_ttl=254
        ),
    )
    assert config.communities[0].communities[0].value == "65535:65282"


def peer_spec(version: str, **spec: object) -> dict[str, object]:
    base = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.254"}
    return {"apiVersion": f"metallb.io/{version}", "kind": "BGPPeer", "metadata": {"name": "r"}, "spec": base | spec}


def test_v1beta1_and_v1beta2_peers_parse_to_the_same_peer() -> None:
    legacy = parse_config([peer_spec("v1beta1", holdTime="90s", nodeSelectors=[{"matchLabels": {"a": "b"}}])])
    current = parse_config([peer_spec("v1beta2", holdTime="90s", nodeSelectors=[{"matchLabels": {"a": "b"}}])])
    assert legacy.bgp_peers == current.bgp_peers


def test_v1beta1_peer_port_zero_means_the_bgp_port() -> None:
    (peer,) = parse_config([peer_spec("v1beta1", peerPort=0)]).bgp_peers
    assert peer.peer_port == 179
    assert config_problems([peer_spec("v1beta2", peerPort=0)]) != []


def test_v1beta1_peer_ignores_fields_only_v1beta2_has() -> None:
    # The API server prunes fields a version does not declare; v1beta1 has no interface/dynamicASN/vrf.
    (peer,) = parse_config(
        [peer_spec("v1beta1", interface="eth0", dynamicASN="external", vrf="red", connectTime="5s")]
    ).bgp_peers
    assert (peer.interface, peer.dynamic_asn, peer.vrf, peer.connect_time_seconds) == (None, None, None, None)


def test_v1beta2_peer_with_interface_only() -> None:
    (peer,) = parse_config([peer_spec("v1beta2", peerAddress=None, interface="eth0")]).bgp_peers
    assert (peer.peer_address, peer.interface) == (None, "eth0")


def test_hold_time_zero_disables_keepalives() -> None:
    (peer,) = parse_config([peer_spec("v1beta2", holdTime="0s")]).bgp_peers
    assert (peer.hold_time_seconds, peer.keepalive_time_seconds) == (0.0, 0.0)


def test_list_objects_are_unwrapped_and_empty_documents_skipped() -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": ["192.0.2.0/24"]},
    }
    config = parse_config([None, {"apiVersion": "v1", "kind": "List", "items": [pool]}])
    assert [p.name for p in config.pools] == ["p"]


def test_pools_keep_manifest_order() -> None:
    names = ["zeta", "alpha", "mid"]
    objects = [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": name},
            "spec": {"addresses": [f"198.51.100.{i * 16}/28"]},
        }
        for i, name in enumerate(names)
    ]
    assert [p.name for p in parse_config(objects).pools] == names


def test_other_groups_and_kinds_are_ignored() -> None:
    objects = [
        {"apiVersion": "example.com/v1beta1", "kind": "IPAddressPool", "metadata": {}, "spec": {"addresses": []}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status", "metadata": {"name": "x"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}, "data": {}},
    ]
    assert parse_config(objects) == parse_config([])
