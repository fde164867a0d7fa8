"""What the allocator reads from a Service: ports, sharing and backend keys, requested pool and addresses.

Mirrors MetalLB's controller/service.go (annotations, getDesiredLbIPs) and internal/allocator/k8salloc. The
`metallb.io/` annotation wins over its deprecated `metallb.universe.tf/` twin whenever it is present, even empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from metallb_fast.allocator.ipfamily import Family, family_of, for_addresses, for_ips, go_quote
from metallb_fast.resources import Service
from metallb_fast.vocabulary import (
    ADDRESS_POOL,
    ALLOW_SHARED_IP,
    ANNOTATION_LOADBALANCER_IPS,
    LOADBALANCER_IPS,
    IPAddress,
    parse_ip,
)

Port = tuple[str, int]  # (protocol, port), printed by MetalLB as "TCP/80"


class RequestError(ValueError):
    """The Service asks for addresses in a way MetalLB rejects (same message as MetalLB)."""


@dataclass(frozen=True)
class SharingKey:
    """MetalLB's allocator key: sharing is the allow-shared-ip value, backend the selector for Local policy."""

    sharing: str
    backend: str


def port_text(port: Port) -> str:
    return f"{port[0]}/{port[1]}"


def ports(service: Service) -> tuple[Port, ...]:
    return tuple((p.protocol, p.port) for p in service.ports)


def backend_key(service: Service) -> str:
    """k8salloc.BackendKey: with externalTrafficPolicy Local, Services may share only if they select the same
    pods, so the key is the selector as labels.Set.String() prints it (sorted `k=v` joined by commas)."""
    if service.external_traffic_policy == "Local":
        return ",".join(f"{k}={v}" for k, v in sorted(service.selector))
    return ""


def sharing_key(service: Service) -> SharingKey:
    value, _ = service.metallb_annotation(ALLOW_SHARED_IP)
    return SharingKey(sharing=value or "", backend=backend_key(service))


def desired_pool(service: Service) -> str:
    value, _ = service.metallb_annotation(ADDRESS_POOL)
    return value or ""


def desired_ips(service: Service) -> tuple[tuple[IPAddress, ...], Family | None]:
    """getDesiredLbIPs: the addresses the Service asks for and their family; () when it asks for none."""
    annotation, _ = service.metallb_annotation(LOADBALANCER_IPS)
    annotation = annotation or ""
    spec_ip = service.load_balancer_ip
    if not annotation and not spec_ip:
        return (), None
    if annotation and spec_ip:
        raise RequestError(f"service can not have both {ANNOTATION_LOADBALANCER_IPS} and svc.Spec.LoadBalancerIP")
    if annotation:
        found: list[IPAddress] = []
        for part in annotation.split(","):
            ip = parse_ip(part.strip())
            if ip is None:
                raise RequestError(f"invalid {ANNOTATION_LOADBALANCER_IPS}: {go_quote(annotation)}")
            found.append(ip)
        try:
            family = for_ips(found)
        except ValueError as err:
            raise RequestError(str(err)) from None
        return tuple(found), family
    ip = parse_ip(spec_ip)
    if ip is None:
        raise RequestError(f"invalid spec.loadBalancerIP {go_quote(spec_ip)}")
    return (ip,), family_of(ip)


def service_family(service: Service) -> Family:
    """ipfamily.ForService: from spec.clusterIPs (the view falls back to spec.clusterIP)."""
    return for_addresses(list(service.cluster_ips))


def family_policy(service: Service) -> str:
    return service.ip_family_policy or "SingleStack"
