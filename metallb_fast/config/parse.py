"""parse_config: manifest dicts of every metallb.io kind -> one validated, immutable Config (pure, no I/O).

Accepts what MetalLB accepts and rejects what its admission webhooks, CRD schemas and config parsing reject,
collecting every problem before raising one ConfigError. Objects of other kinds are ignored, so a whole manifest
can be passed; `List` objects are unwrapped, and v1 Nodes (if any) make the localPref check use real node labels
as MetalLB's webhook does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_fast import manifests
from metallb_fast.config.advertisements import parse_bgp_advertisement, parse_l2_advertisement
from metallb_fast.config.bgp import parse_bfd_profile, parse_community_object, parse_peer
from metallb_fast.config.errors import ConfigError, ConfigProblem
from metallb_fast.config.fields import ObjectFields, Parsed
from metallb_fast.config.k8snames import label_key_error, label_value_error, object_name_error
from metallb_fast.config.model import Community, Config
from metallb_fast.config.pools import parse_pool
from metallb_fast.config.validate import (
    NodeView,
    check_bgp_advertisements,
    check_overlaps,
    check_peer_references,
    check_unique_names,
)
from metallb_fast.vocabulary import GROUP

# The versions the CRDs serve, per kind.
SERVED_VERSIONS: dict[str, tuple[str, ...]] = {
    "IPAddressPool": ("v1beta1",),
    "L2Advertisement": ("v1beta1",),
    "BGPAdvertisement": ("v1beta1",),
    "BGPPeer": ("v1beta1", "v1beta2"),
    "Community": ("v1beta1",),
    "BFDProfile": ("v1beta1",),
}


@dataclass(frozen=True)
class _Document:
    kind: str
    version: str
    obj: Mapping[str, Any]
    fields: ObjectFields
    labels: Mapping[str, str]

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, Mapping) else {}


def _node(obj: Mapping[str, Any]) -> NodeView | None:
    if obj.get("apiVersion") != "v1" or obj.get("kind") != "Node":
        return None
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    labels = metadata.get("labels")
    if not isinstance(labels, Mapping):
        labels = {}
    return NodeView(str(metadata.get("name", "")), {str(k): str(v) for k, v in labels.items()})


def _documents(objects: Iterable[Any], problems: list[ConfigProblem], nodes: list[NodeView]) -> Iterator[_Document]:
    for position, obj in enumerate(manifests.objects(objects)):
        node = _node(obj)
        if node is not None:
            nodes.append(node)
            continue
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or kind not in SERVED_VERSIONS:
            continue
        group, _, version = api_version.rpartition("/")
        if group != GROUP:
            continue
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        fields = ObjectFields(kind, name if isinstance(name, str) else "", position, problems)
        if version not in SERVED_VERSIONS[kind]:
            served = " or ".join(f"{GROUP}/{v}" for v in SERVED_VERSIONS[kind])
            fields.report("apiVersion", api_version, f"not served for {kind} (use {served})")
            continue
        if not fields.name:
            fields.report("metadata.name", name, "is required")
        elif (err := object_name_error(fields.name)) is not None:
            fields.report("metadata.name", fields.name, err)
        if obj.get("spec") is not None and not isinstance(obj.get("spec"), Mapping):
            fields.report("spec", obj.get("spec"), "must be an object")
        yield _Document(kind, version, obj, fields, _labels(fields, metadata))


def _labels(fields: ObjectFields, metadata: object) -> dict[str, str]:
    """metadata.labels, checked as the API server checks every object's labels."""
    labels = fields.string_map(metadata, "labels", "metadata.labels") if isinstance(metadata, Mapping) else {}
    valid: dict[str, str] = {}
    for key, value in labels.items():
        err = label_key_error(key) or label_value_error(value)
        if err is None:
            valid[key] = value
        else:
            fields.report(f"metadata.labels.{key}", value, err)
    return valid


def parse_config(objects: Iterable[Mapping[str, Any]]) -> Config:
    """Parse and validate metallb.io objects; raises ConfigError listing every problem found."""
    problems: list[ConfigProblem] = []
    nodes: list[NodeView] = []
    by_kind: dict[str, list[_Document]] = {kind: [] for kind in SERVED_VERSIONS}
    for document in _documents(objects, problems, nodes):
        by_kind[document.kind].append(document)

    communities = [parse_community_object(d.fields, d.spec) for d in by_kind["Community"]]
    aliases = _community_aliases(communities)
    pools = [parse_pool(d.fields, d.labels, d.spec) for d in by_kind["IPAddressPool"]]
    l2_advertisements = [parse_l2_advertisement(d.fields, d.spec) for d in by_kind["L2Advertisement"]]
    bgp_advertisements = [parse_bgp_advertisement(d.fields, d.spec, aliases) for d in by_kind["BGPAdvertisement"]]
    peers = [parse_peer(d.fields, d.spec, d.version) for d in by_kind["BGPPeer"]]
    bfd_profiles = [parse_bfd_profile(d.fields, d.spec) for d in by_kind["BFDProfile"]]

    for kind, parsed in (
        ("IPAddressPool", pools),
        ("L2Advertisement", l2_advertisements),
        ("BGPAdvertisement", bgp_advertisements),
        ("BGPPeer", peers),
        ("Community", communities),
        ("BFDProfile", bfd_profiles),
    ):
        check_unique_names(parsed, kind)
    check_overlaps(pools)
    check_bgp_advertisements(bgp_advertisements, pools, nodes)
    check_peer_references(peers, bfd_profiles, bgp_advertisements, pools)

    if problems:
        # Manifest order, then the order the checks found them in (sorted() is stable).
        raise ConfigError(sorted(problems, key=lambda p: -1 if p.position is None else p.position))
    return Config(
        pools=tuple(p.value for p in pools),
        l2_advertisements=tuple(a.value for a in l2_advertisements),
        bgp_advertisements=tuple(a.value for a in bgp_advertisements),
        bgp_peers=tuple(p.value for p in peers),
        communities=tuple(c.value for c in communities),
        bfd_profiles=tuple(b.value for b in bfd_profiles),
    )


def _community_aliases(communities: list[Parsed[Community]]) -> dict[str, str]:
    """Alias name -> value over every Community object; an alias defined twice is an error (MetalLB)."""
    aliases: dict[str, str] = {}
    defined_in: dict[str, str] = {}
    for community in communities:
        for i, alias in enumerate(community.value.communities):
            if alias.name in aliases:
                community.fields.report(
                    f"{community.paths[i]}.name",
                    alias.name,
                    f'duplicate community alias (already defined in Community "{defined_in[alias.name]}")',
                )
                continue
            aliases[alias.name] = alias.value
            defined_in[alias.name] = community.value.name
    return aliases


def config_problems(objects: Iterable[Mapping[str, Any]]) -> list[ConfigProblem]:
    """Every problem parse_config would raise, or [] for a valid configuration (for dry runs and reports)."""
    try:
        parse_config(objects)
    except ConfigError as err:
        return err.problems
    return []
