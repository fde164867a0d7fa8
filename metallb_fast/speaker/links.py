"""Read the node's network links into LinkInfo values (the only I/O of the layer-2 plan), via rtnetlink."""

from __future__ import annotations

import ipaddress
import socket

from pyroute2 import IPRoute

from metallb_fast.speaker.layer2 import LinkInfo

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_NOARP = 0x80


def _mac(text: str | None) -> bytes:
    if not text:
        return b""
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return b""


def read_links(netns: str | None = None) -> tuple[LinkInfo, ...]:
    """Every link of this network namespace (or of the named one), sorted by name."""
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        links = ipr.get_links()
        addresses = ipr.get_addr()
    has_ipv4: set[int] = set()
    has_ll6: set[int] = set()
    for msg in addresses:
        text = msg.get_attr("IFA_ADDRESS")
        if not text:
            continue
        if msg["family"] == socket.AF_INET:
            has_ipv4.add(msg["index"])
        elif msg["family"] == socket.AF_INET6 and ipaddress.IPv6Address(text.split("%")[0]).is_link_local:
            has_ll6.add(msg["index"])
    result = []
    for msg in links:
        index, flags = msg["index"], msg["flags"]
        result.append(
            LinkInfo(
                name=msg.get_attr("IFLA_IFNAME") or f"if{index}",
                mac=_mac(msg.get_attr("IFLA_ADDRESS")),
                up=bool(flags & IFF_UP),
                broadcast=bool(flags & IFF_BROADCAST),
                noarp=bool(flags & IFF_NOARP),
                has_ipv4=index in has_ipv4,
                has_ipv6_link_local=index in has_ll6,
                enslaved=bool(msg.get_attr("IFLA_MASTER")),
            )
        )
    return tuple(sorted(result, key=lambda link: link.name))


def interface_with_address(address: str, netns: str | None = None) -> str | None:
    """The link that holds `address` (the memberlist bind address: where the peers' heartbeats arrive)."""
    wanted = ipaddress.ip_address(address)
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        for msg in ipr.get_addr():
            text = msg.get_attr("IFA_ADDRESS")
            if text and ipaddress.ip_address(text.split("%")[0]) == wanted:
                link = ipr.get_links(msg["index"])
                return link[0].get_attr("IFLA_IFNAME") if link else None
    return None
