"""L2Advertisement and BGPAdvertisement (metallb.io/v1beta1), with MetalLB's per-object checks.

Checks that need the pools (aggregation length against pool prefixes, conflicting localPref) live in validate.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metallb_fast.config.fields import ObjectFields, Parsed
from metallb_fast.config.model import BGPAdvertisement, L2Advertisement, PreferredNodeSelector
from metallb_fast.config.selectors import parse_selector, parse_selector_list
from metallb_fast.config.values import CommunityError, parse_community

UINT32_MAX = (1 << 32) - 1


def _unique_names(fields: ObjectFields, spec: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    names = fields.texts(spec, key, f"spec.{key}")
    fields.duplicates(f"spec.{key}", names, what)
    return tuple(dict.fromkeys(names))


def _preferred_node_selectors(fields: ObjectFields, spec: Mapping[str, Any]) -> tuple[PreferredNodeSelector, ...]:
    result: list[PreferredNodeSelector] = []
    for path, item in fields.mappings(spec, "preferredNodeSelectors", "spec.preferredNodeSelectors"):
        weight = fields.integer(item, "weight", f"{path}.weight", 1, 100)
        if item.get("weight") is None:
            fields.report(f"{path}.weight", None, "is required (1 to 100)")
        preference = fields.mapping(item, "preference", f"{path}.preference")
        if item.get("preference") is None:
            fields.report(f"{path}.preference", None, "is required (a label selector)")
        selector = parse_selector(fields, preference, f"{path}.preference") if preference is not None else None
        if weight is not None and selector is not None:
            result.append(PreferredNodeSelector(weight, selector))
    return tuple(result)


def parse_l2_advertisement(fields: ObjectFields, spec: Mapping[str, Any]) -> Parsed[L2Advertisement]:
    # A repeated interface is rejected like every other repeated list entry (issue 3's rule), although
    # MetalLB's own parser compares interfaces as sets and lets it through.
    interfaces = _unique_names(fields, spec, "interfaces", "interface")
    adv = L2Advertisement(
        name=fields.name,
        ip_address_pools=_unique_names(fields, spec, "ipAddressPools", "pool name"),
        ip_address_pool_selectors=parse_selector_list(
            fields, spec, "ipAddressPoolSelectors", "spec.ipAddressPoolSelectors"
        ),
        node_selectors=parse_selector_list(fields, spec, "nodeSelectors", "spec.nodeSelectors"),
        interfaces=interfaces,
        service_selectors=parse_selector_list(fields, spec, "serviceSelectors", "spec.serviceSelectors"),
        preferred_node_selectors=_preferred_node_selectors(fields, spec),
    )
    return Parsed(adv, fields)


def _communities(fields: ObjectFields, spec: Mapping[str, Any], aliases: Mapping[str, str]) -> tuple[str, ...]:
    raw = fields.texts(spec, "communities", "spec.communities")
    fields.duplicates("spec.communities", raw, "community")
    resolved: list[str] = []
    for i, text in enumerate(raw):
        if text in aliases:  # MetalLB looks the alias up first, then parses a literal value
            resolved.append(aliases[text])
            continue
        try:
            resolved.append(parse_community(text))
        except CommunityError as err:
            rule = str(err)
            if err.is_format:
                rule = 'neither a community value ("a:b" or "large:a:b:c") nor the name of a Community alias'
            fields.report(f"spec.communities[{i}]", text, rule)
    return tuple(dict.fromkeys(resolved))


def parse_bgp_advertisement(
    fields: ObjectFields, spec: Mapping[str, Any], aliases: Mapping[str, str]
) -> Parsed[BGPAdvertisement]:
    length = fields.integer(spec, "aggregationLength", "spec.aggregationLength", 1, 32)
    # MetalLB only bounds the IPv6 length from above; a pool check catches lengths too short for a v6 pool.
    length_v6 = fields.integer(spec, "aggregationLengthV6", "spec.aggregationLengthV6", None, 128)
    service_selectors = parse_selector_list(fields, spec, "serviceSelectors", "spec.serviceSelectors")
    if spec.get("serviceSelectors"):
        for key, default in (("aggregationLength", 32), ("aggregationLengthV6", 128)):
            value = spec.get(key)
            if value is not None and value != default:
                fields.report(f"spec.{key}", value, f"must stay {default} (the default) when serviceSelectors are set")
    adv = BGPAdvertisement(
        name=fields.name,
        aggregation_length=32 if length is None else length,
        aggregation_length_v6=128 if length_v6 is None else length_v6,
        local_pref=fields.integer(spec, "localPref", "spec.localPref", 0, UINT32_MAX),
        communities=_communities(fields, spec, aliases),
        ip_address_pools=_unique_names(fields, spec, "ipAddressPools", "pool name"),
        ip_address_pool_selectors=parse_selector_list(
            fields, spec, "ipAddressPoolSelectors", "spec.ipAddressPoolSelectors"
        ),
        node_selectors=parse_selector_list(fields, spec, "nodeSelectors", "spec.nodeSelectors"),
        peers=_unique_names(fields, spec, "peers", "peer name"),
        service_selectors=service_selectors,
    )
    return Parsed(adv, fields)
