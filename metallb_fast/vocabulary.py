"""The Kubernetes vocabulary metallb-fast shares with MetalLB, written once: API groups and paths, annotations,
labels, defaults, the `namespace/name` key, and Go's reading of an IP address.

Every component reads a Service's addresses through `parse_ip`, so an address means the same thing to the
controller, the allocator, the speaker and `plan` (MetalLB parses them all with Go's net.ParseIP). Pure: no I/O,
and no import of another metallb_fast module, so any module may import this one.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metallb_fast.resources import Service

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ------------------------------------------------------------------------------------------------- API groups
GROUP = "metallb.io"
API_VERSION_V1BETA1 = f"{GROUP}/v1beta1"
API_VERSION_V1BETA2 = f"{GROUP}/v1beta2"
METALLB_V1BETA1_PATH = f"/apis/{API_VERSION_V1BETA1}"
METALLB_V1BETA2_PATH = f"/apis/{API_VERSION_V1BETA2}"
CORE_V1_PATH = "/api/v1"
DISCOVERY_GROUP_PATH = "/apis/discovery.k8s.io"  # + "/v1" or "/v1beta1"
APPS_V1_PATH = "/apis/apps/v1"

# ------------------------------------------------------------------------------------------------- defaults
DEFAULT_NAMESPACE = "metallb-system"  # where MetalLB's programs read the metallb.io objects
NAMESPACE_ENV = "METALLB_NAMESPACE"  # the Deployment/DaemonSet set it from the Pod's namespace
CONTROLLER_COMPONENT = "metallb-controller"  # the source component of the controller's Events

# ------------------------------------------------------------------------------------------------- annotations
ANNOTATION_PREFIX = f"{GROUP}/"
# MetalLB's deprecated group; it warns about an annotation whose name starts with this (no slash).
DEPRECATED_GROUP = "metallb.universe.tf"
DEPRECATED_ANNOTATION_PREFIX = f"{DEPRECATED_GROUP}/"

ADDRESS_POOL = "address-pool"
LOADBALANCER_IPS = "loadBalancerIPs"
IP_ALLOCATED_FROM_POOL = "ip-allocated-from-pool"
ALLOW_SHARED_IP = "allow-shared-ip"

ANNOTATION_ADDRESS_POOL = ANNOTATION_PREFIX + ADDRESS_POOL
ANNOTATION_LOADBALANCER_IPS = ANNOTATION_PREFIX + LOADBALANCER_IPS
ANNOTATION_IP_ALLOCATED_FROM_POOL = ANNOTATION_PREFIX + IP_ALLOCATED_FROM_POOL
ANNOTATION_ALLOW_SHARED_IP = ANNOTATION_PREFIX + ALLOW_SHARED_IP
DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL = DEPRECATED_ANNOTATION_PREFIX + IP_ALLOCATED_FROM_POOL

# ------------------------------------------------------------------------------------------------- labels
LABEL_NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by the API server on every Namespace
LABEL_SERVICE_NAME = "kubernetes.io/service-name"  # names an EndpointSlice's Service
LABEL_EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
LABEL_STATUS_NODE = f"{GROUP}/node"  # ServiceL2Status
LABEL_STATUS_SERVICE_NAME = f"{GROUP}/service-name"
LABEL_STATUS_SERVICE_NAMESPACE = f"{GROUP}/service-namespace"
LABEL_COMPONENT_TYPE = f"{GROUP}/component-type"  # ConfigurationState
LABEL_NODE_NAME = f"{GROUP}/node-name"


def object_key(namespace: str, name: str) -> str:
    """The `namespace/name` key every cache, queue and allocation is indexed by."""
    return f"{namespace}/{name}"


# ------------------------------------------------------------------------------------------------- addresses
# A pass re-reads each Service's cluster and status addresses. Bounded below the address count of a large cluster:
# at 65,536 entries these two caches held ~4 MiB in a speaker with 10,000 Services, to spare a 2 us parse.
ADDRESS_CACHE_SIZE = 1 << 12


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def parse_ip(text: str) -> IPAddress | None:
    """Go's net.ParseIP followed by To4, as MetalLB reads every address: None when invalid.

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.10`) is the IPv4 address; a zone (`fe80::1%eth0`), surrounding
    spaces, leading zeros in an IPv4 part and more than four hex digits in a group are invalid.
    """
    if not text or "%" in text:
        return None
    # inet_pton is the C parser, with Go's rules (leading zeros refused); ipaddress then builds from the bytes.
    try:
        if ":" not in text:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
        ip = ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):  # ValueError: a NUL or a character that is not text
        return None
    return ip.ipv4_mapped or ip


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def ip_text(ip: IPAddress | None) -> str:
    """Go's net.IP.String(): a nil address prints as <nil>."""
    return "<nil>" if ip is None else str(ip)


# ------------------------------------------------------------------------------------------------- Services
def class_matches(service: Service, lb_class: str | None) -> bool:
    """MetalLB's filterByLoadBalancerClass, inverted: without --lb-class only Services without a class are ours."""
    if service.load_balancer_class is None:
        return not lb_class
    return service.load_balancer_class == (lb_class or "")


def shares_address(service: Service) -> bool:
    """The Service carries a non-empty allow-shared-ip key under either annotation prefix."""
    annotations = service.annotation_map
    return any(
        annotations.get(prefix + ALLOW_SHARED_IP) for prefix in (ANNOTATION_PREFIX, DEPRECATED_ANNOTATION_PREFIX)
    )
