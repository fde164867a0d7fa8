"""IPAddressPool (metallb.io/v1beta1) -> Pool, with MetalLB's per-object checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metallb_fast.config.addresses import EntryError, parse_address_entry
from metallb_fast.config.fields import ObjectFields, Parsed
from metallb_fast.config.model import AddressRange, LabelSelector, Pool, ServiceAllocation
from metallb_fast.config.selectors import parse_selector_list


def _service_allocation(fields: ObjectFields, spec: Mapping[str, Any]) -> ServiceAllocation | None:
    path = "spec.serviceAllocation"
    allocation = fields.mapping(spec, "serviceAllocation", path)
    if allocation is None:
        return None
    priority = fields.integer(allocation, "priority", f"{path}.priority")
    namespaces = fields.texts(allocation, "namespaces", f"{path}.namespaces")
    fields.duplicates(f"{path}.namespaces", namespaces, "namespace")
    namespace_selectors = parse_selector_list(fields, allocation, "namespaceSelectors", f"{path}.namespaceSelectors")
    service_selectors = parse_selector_list(fields, allocation, "serviceSelectors", f"{path}.serviceSelectors")
    if not namespaces and not namespace_selectors and not service_selectors:
        # MetalLB's config stores an allocation that restricts nothing as "select every Service".
        service_selectors = (LabelSelector(),)
    return ServiceAllocation(
        # MetalLB's Priority is a plain int where 0 means "not set".
        priority=priority or None,
        namespaces=tuple(dict.fromkeys(namespaces)),
        namespace_selectors=namespace_selectors,
        service_selectors=service_selectors,
    )


def parse_pool(fields: ObjectFields, labels: Mapping[str, str], spec: Mapping[str, Any]) -> Parsed[Pool]:
    entries = fields.texts(spec, "addresses", "spec.addresses")
    if spec.get("addresses") in (None, []):
        fields.report("spec.addresses", None, "is required: at least one CIDR or a-b range")
    ranges: list[AddressRange] = []
    paths: list[str] = []
    for i, entry in enumerate(entries):
        try:
            ranges.append(parse_address_entry(entry))
        except EntryError as err:
            fields.report(f"spec.addresses[{i}]", entry, str(err))
            continue
        paths.append(f"spec.addresses[{i}]")
    auto_assign = fields.flag(spec, "autoAssign", "spec.autoAssign")
    avoid_buggy_ips = fields.flag(spec, "avoidBuggyIPs", "spec.avoidBuggyIPs")
    pool = Pool(
        name=fields.name,
        ranges=tuple(ranges),
        auto_assign=True if auto_assign is None else auto_assign,
        avoid_buggy_ips=bool(avoid_buggy_ips),
        service_allocation=_service_allocation(fields, spec),
        labels=tuple(sorted(labels.items())),
    )
    return Parsed(pool, fields, tuple(paths))
