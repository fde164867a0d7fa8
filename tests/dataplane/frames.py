"""Request frames for the dataplane tests, built by hand (struct, offsets from RFC 826 / RFC 4861).

Deliberately not packets.py's own builders: the oracle and the backends are checked against an independent
reading of the wire format. Every field a test may want wrong is a parameter; the defaults are a valid request
from CLIENT for VIP, which the tests own with OWNED_MAC. Incoming ICMPv6 checksums are not verified by any backend
(FASTPATH.md), so NS frames carry a zero checksum; tests that check checksums compute their own.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")
CLIENT4 = IPv4Address("198.51.100.7")
CLIENT6 = IPv6Address("2001:db8:1::7")
OWNED_MAC = bytes.fromhex("02aabbccdd01")
OTHER_MAC = bytes.fromhex("02aabbccdd02")
CLIENT_MAC = bytes.fromhex("02112233aa01")
STRANGER_MAC = bytes.fromhex("02deadbeef01")
BCAST = b"\xff" * 6
ARP_PAD = bytes(18)  # to the 60-byte Ethernet minimum: a 42-byte ARP frame as a NIC delivers it


def arp(
    tpa: IPv4Address = VIP4,
    *,
    op: int = 1,
    spa: IPv4Address = CLIENT4,
    eth_dst: bytes = BCAST,
    sha: bytes = CLIENT_MAC,
    htype: int = 1,
    ptype: int = 0x0800,
    hlen: int = 6,
    plen: int = 4,
    pad: bytes = ARP_PAD,
) -> bytes:
    """An ARP frame from CLIENT_MAC asking for `tpa`: 42 bytes, then `pad` (b"" for the bare 42)."""
    eth = eth_dst + CLIENT_MAC + b"\x08\x06"
    body = struct.pack("!HHBBH", htype, ptype, hlen, plen, op)
    body += sha + spa.packed + b"\x00" * 6 + tpa.packed
    return eth + body + pad


def sllao(mac: bytes = CLIENT_MAC) -> bytes:
    """A source link-layer address option (type 1, one 8-byte unit)."""
    return b"\x01\x01" + mac


def option(kind: int, units: int, fill: int = 0xA5) -> bytes:
    """An NDP option of `units` 8-byte units (its length field says `units`, whatever the bytes hold)."""
    return bytes([kind, units]) + bytes([fill]) * max(0, units * 8 - 2)


def ns(
    target: IPv6Address = VIP6,
    *,
    src: IPv6Address = CLIENT6,
    eth_dst: bytes | None = None,
    hop_limit: int = 255,
    icmp_type: int = 135,
    code: int = 0,
    options: bytes | None = None,
    next_header: int = 58,
    version: int = 6,
    payload_len: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """An NS from CLIENT_MAC for `target` to its solicited-node group (payload length from the options unless
    `payload_len` says otherwise); `options` defaults to one source link-layer option."""
    group = b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + target.packed[13:]
    if eth_dst is None:
        eth_dst = b"\x33\x33" + group[12:]
    if options is None:
        options = sllao()
    icmp = struct.pack("!BBHI", icmp_type, code, 0, 0) + target.packed + options
    length = len(icmp) if payload_len is None else payload_len
    ip6 = struct.pack("!IHBB", version << 28, length, next_header, hop_limit) + src.packed + group
    return eth_dst + CLIENT_MAC + b"\x86\xdd" + ip6 + icmp + trailer


def vlan_tagged(frame: bytes, vid: int = 5) -> bytes:
    """`frame` with an 802.1Q tag inserted after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]
