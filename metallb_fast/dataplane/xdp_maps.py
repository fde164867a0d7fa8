"""The XDP program's maps as Python packs them: xdp_responder.c's key and value structs, mirrored once, byte for byte.

The C structs and these packers are one contract: `check` compares each packer's size with the key_size and
value_size the kernel reports for the loaded program's map, so a C change this file does not follow fails at load,
naming the map, instead of writing misplaced bytes. Native byte order ('=': the program runs on this CPU) with no
implicit padding; explicit pad bytes are written as zeros, as the C program's `= {}` initialisers leave them.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from metallb_fast.dataplane import bpfsys
from metallb_fast.dataplane.base import IPAddress, ResponderError

VIP4_KEY = struct.Struct("=4sI")  # struct vip4_key {__be32 addr (the address's bytes); __u32 ifindex}
VIP6_KEY = struct.Struct("=16sI")  # struct vip6_key {struct in6_addr addr; __u32 ifindex}
MAC_VALUE = struct.Struct("=6s2x")  # struct vip_value and struct heartbeat_iface: {__u8 mac[6]; __u8 pad[2]}
VIP_COUNTERS = struct.Struct("=QQ")  # struct vip_counters {__u64 requests; __u64 replies}
INDEX = struct.Struct("=i")  # the arrays' int keys
IFINDEX = struct.Struct("=I")  # heartbeat_ifaces' __u32 key
U64 = struct.Struct("=Q")
FLOOD_CONFIG = struct.Struct("=QQQ")  # struct flood_config {__u64 interval_ns, tolerance_ns, action}
FLOOD_KEY = struct.Struct("=6sBx16s")  # struct flood_key {__u8 mac[6]; __u8 family; __u8 pad; __u8 addr[16]}


@dataclass(frozen=True)
class Layout:
    key: struct.Struct
    value: struct.Struct


LAYOUTS: Mapping[str, Layout] = {
    "vips_v4": Layout(VIP4_KEY, MAC_VALUE),
    "vips_v6": Layout(VIP6_KEY, MAC_VALUE),
    "counters_v4": Layout(VIP4_KEY, VIP_COUNTERS),
    "counters_v6": Layout(VIP6_KEY, VIP_COUNTERS),
    "verdicts": Layout(INDEX, U64),
    "config": Layout(INDEX, U64),
    "heartbeat_ifaces": Layout(IFINDEX, MAC_VALUE),
    "flood_config": Layout(INDEX, FLOOD_CONFIG),
    "flood_buckets": Layout(FLOOD_KEY, U64),
}


def check(name: str, info: bpfsys.MapInfo | None) -> None:
    """ResponderError unless the loaded program's map `name` has the sizes LAYOUTS packs."""
    layout = LAYOUTS[name]
    if info is None:
        raise ResponderError(f"xdp: the loaded program has no map {name} (xdp_responder.c and xdp_maps.py disagree)")
    if (info.key_size, info.value_size) != (layout.key.size, layout.value.size):
        raise ResponderError(
            f"xdp: map {name} of the loaded program has {info.key_size}-byte keys and {info.value_size}-byte values, "
            f"xdp_maps.py packs {layout.key.size} and {layout.value.size}: xdp_responder.c and xdp_maps.py disagree "
            "(mismatched files in this installation)"
        )


def vip_key(address: IPAddress, ifindex: int) -> bytes:
    """The vip4_key / vip6_key of (address, ifindex): the address in network byte order."""
    return (VIP4_KEY if address.version == 4 else VIP6_KEY).pack(address.packed, ifindex)


def vip_key_fields(key: bytes) -> tuple[IPAddress, int]:
    """(address, ifindex) of a vip4_key or vip6_key."""
    if len(key) == VIP4_KEY.size:
        packed, ifindex = VIP4_KEY.unpack(key)
        return ipaddress.IPv4Address(packed), ifindex
    packed, ifindex = VIP6_KEY.unpack(key)
    return ipaddress.IPv6Address(packed), ifindex


def mac_of(value: bytes) -> bytes:
    """The MAC of a vip_value or heartbeat_iface."""
    (mac,) = MAC_VALUE.unpack(value)
    return bytes(mac)
