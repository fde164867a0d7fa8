"""Sans-IO ARP / NDP codec: the oracle every responder (xdp, ring, python) is checked against.

`answer()` decides, for one received Ethernet frame, whether it is an ARP request or IPv6 Neighbor
Solicitation this node must answer, and builds the reply byte for byte as the fast-path spec requires.
It never raises on any input bytes: a frame that cannot be understood is a Verdict, not an exception.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Container, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from metallb_fast.dataplane.base import IPAddress, Verdict

ETH_HLEN = 14
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ALL_NODES_V6 = IPv6Address("ff02::1")

ARP_LEN = ETH_HLEN + 28  # 42: Ethernet + ARP for IPv4 over Ethernet
MIN_FRAME = 60  # Ethernet minimum without FCS; gratuitous ARP is padded to it
IPV6_HLEN = 40
ICMP6_OFF = ETH_HLEN + IPV6_HLEN  # 54
NS_LEN = 24  # ICMPv6 type, code, checksum, reserved, target
NA_FRAME_LEN = ICMP6_OFF + 32  # 86: NA header + one target link-layer option
MAX_OPTIONS = 8  # bounded scan: the XDP verifier needs a fixed bound, and every backend must agree

ICMP6_NS = 135
ICMP6_NA = 136
NEXT_HEADER_ICMP6 = 58
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
NA_FLAGS_SOLICITED = 0x60000000  # S=1 O=1 R=0
NA_FLAGS_UNSOLICITED = 0x20000000  # S=0 O=1 R=0


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    reply: bytes | None = None  # frame to transmit on the ingress interface, only when ANSWERED
    target: IPAddress | None = None  # requested address, when the frame parsed far enough to have one


def answer(
    frame: bytes,
    owned_here: Mapping[IPAddress, bytes],
    owned_elsewhere: Container[IPAddress] = frozenset(),
    alive: bool = True,
) -> Answer:
    """Decide and build the reply for one received frame (decision order: FASTPATH.md)."""
    if not isinstance(frame, bytes):
        frame = bytes(frame)  # bytearray / memoryview from a socket: slices must be hashable bytes
    if len(frame) < ETH_HLEN:
        return Answer(Verdict.MALFORMED)
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETHERTYPE_ARP:
        return _answer_arp(frame, owned_here, owned_elsewhere, alive)
    if ethertype == ETHERTYPE_IPV6:
        return _answer_ns(frame, owned_here, owned_elsewhere, alive)
    return Answer(Verdict.NOT_ARP_OR_NDP)


def _lookup(
    target: IPAddress,
    eth_dst: bytes,
    dst_ok_without_mac: bool,
    owned_here: Mapping[IPAddress, bytes],
    owned_elsewhere: Container[IPAddress],
    alive: bool,
) -> tuple[Verdict, bytes | None]:
    """The shared tail of both decisions: owned here? addressed to us? still alive?"""
    mac = owned_here.get(target)
    if mac is None:
        return (Verdict.WRONG_INTERFACE if target in owned_elsewhere else Verdict.NOT_OWNED), None
    if not dst_ok_without_mac and eth_dst != mac:
        return Verdict.NOT_OWNED, None
    if not alive:
        return Verdict.LIVENESS_EXPIRED, None
    return Verdict.ANSWERED, mac


def _answer_arp(
    frame: bytes, owned_here: Mapping[IPAddress, bytes], owned_elsewhere: Container[IPAddress], alive: bool
) -> Answer:
    if len(frame) < ARP_LEN:
        return Answer(Verdict.MALFORMED)
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, ETH_HLEN)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        return Answer(Verdict.MALFORMED)
    target = IPv4Address(frame[38:42])
    if op != 1:
        return Answer(Verdict.NOT_REQUEST, target=target)
    if frame[28:32] == frame[38:42]:
        return Answer(Verdict.GRATUITOUS, target=target)
    eth_dst = frame[0:6]
    verdict, mac = _lookup(target, eth_dst, eth_dst == BROADCAST_MAC, owned_here, owned_elsewhere, alive)
    if mac is None:
        return Answer(verdict, target=target)
    reply = bytearray(frame)  # same length: trailing padding is carried over unchanged
    reply[0:6] = frame[6:12]
    reply[6:12] = mac
    reply[20:22] = b"\x00\x02"
    reply[22:28] = mac
    reply[28:32] = frame[38:42]
    reply[32:38] = frame[22:28]
    reply[38:42] = frame[28:32]
    return Answer(Verdict.ANSWERED, bytes(reply), target)


def _answer_ns(
    frame: bytes, owned_here: Mapping[IPAddress, bytes], owned_elsewhere: Container[IPAddress], alive: bool
) -> Answer:
    if len(frame) < ICMP6_OFF:
        return Answer(Verdict.MALFORMED)
    if frame[ETH_HLEN] >> 4 != 6:
        return Answer(Verdict.MALFORMED)
    payload_len = (frame[18] << 8) | frame[19]
    if frame[20] != NEXT_HEADER_ICMP6:
        return Answer(Verdict.NOT_ARP_OR_NDP)
    end = ICMP6_OFF + payload_len
    if payload_len < NS_LEN or end > len(frame):
        return Answer(Verdict.MALFORMED)
    icmp_type = frame[ICMP6_OFF]
    if icmp_type == ICMP6_NA:
        return Answer(Verdict.NOT_REQUEST)
    if icmp_type != ICMP6_NS:
        return Answer(Verdict.NOT_ARP_OR_NDP)
    if frame[ICMP6_OFF + 1] != 0:
        return Answer(Verdict.MALFORMED)
    target = IPv6Address(frame[62:78])
    if frame[21] != 255:
        return Answer(Verdict.BAD_HOP_LIMIT, target=target)
    if frame[62] == 0xFF:
        return Answer(Verdict.MALFORMED, target=target)
    if frame[22:38] == bytes(16):
        return Answer(Verdict.GRATUITOUS, target=target)
    options = _scan_options(frame, ICMP6_OFF + NS_LEN, end)
    if options is not Verdict.ANSWERED:
        return Answer(options, target=target)
    eth_dst = frame[0:6]
    verdict, mac = _lookup(target, eth_dst, bool(frame[0] & 1), owned_here, owned_elsewhere, alive)
    if mac is None:
        return Answer(verdict, target=target)
    reply = _neighbor_advertisement(frame[6:12], mac, frame[62:78], frame[22:38], NA_FLAGS_SOLICITED)
    return Answer(Verdict.ANSWERED, reply, target)


def _scan_options(frame: bytes, offset: int, end: int) -> Verdict:
    """ANSWERED when a source link-layer option (type 1, length 1) comes before any malformed option.

    The scan stops at the first such option, at `end`, or after MAX_OPTIONS options, whichever is first.
    """
    for _ in range(MAX_OPTIONS):
        if offset >= end:
            break
        if offset + 2 > end:
            return Verdict.MALFORMED
        opt_type, opt_len = frame[offset], frame[offset + 1]
        if opt_len == 0 or offset + opt_len * 8 > end:
            return Verdict.MALFORMED
        if opt_type == OPT_SOURCE_LLADDR and opt_len == 1:
            return Verdict.ANSWERED
        offset += opt_len * 8
    return Verdict.NO_SOURCE_LLADDR


def _neighbor_advertisement(eth_dst: bytes, mac: bytes, src: bytes, dst: bytes, flags: int) -> bytes:
    """86-byte NA from `src` (the target) to `dst` with one target link-layer option carrying `mac`."""
    icmp = bytearray(struct.pack("!BBHI16sBB6s", ICMP6_NA, 0, 0, flags, src, OPT_TARGET_LLADDR, 1, mac))
    struct.pack_into("!H", icmp, 2, icmpv6_checksum(src, dst, bytes(icmp)))
    ipv6 = struct.pack("!IHBB16s16s", 0x60000000, len(icmp), NEXT_HEADER_ICMP6, 255, src, dst)
    return eth_dst + mac + struct.pack("!H", ETHERTYPE_IPV6) + ipv6 + bytes(icmp)


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 2.3: one's complement sum over the pseudo-header and the message (checksum field 0)."""
    data = src + dst + struct.pack("!IxxxB", len(message), NEXT_HEADER_ICMP6) + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF  # no 0 -> 0xffff substitution (that is UDP's rule), same as the XDP fold


def gratuitous_arp(ip: IPv4Address, mac: bytes) -> list[bytes]:
    """MetalLB's gratuitous pair: a broadcast ARP request and a broadcast ARP reply, sender = target = ip."""
    return [_gratuitous(ip, mac, op) for op in (1, 2)]


def _gratuitous(ip: IPv4Address, mac: bytes, op: int) -> bytes:
    addr = ip.packed
    frame = BROADCAST_MAC + mac + struct.pack("!HHHBBH", ETHERTYPE_ARP, 1, 0x0800, 6, 4, op)
    frame += mac + addr + BROADCAST_MAC + addr
    return frame.ljust(MIN_FRAME, b"\x00")


def unsolicited_na(ip: IPv6Address, mac: bytes) -> bytes:
    """Unsolicited NA to ff02::1 with the override flag: neighbours update their cache to `mac`."""
    return _neighbor_advertisement(
        eth_dst=ALL_NODES_MAC, mac=mac, src=ip.packed, dst=ALL_NODES_V6.packed, flags=NA_FLAGS_UNSOLICITED
    )


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def parse_mac(text: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or with '-') -> 6 bytes; ValueError naming the text otherwise."""
    if not _MAC_RE.match(text.strip()):
        raise ValueError(f"MAC address {text!r} is not six hex octets separated by ':' (aa:bb:cc:dd:ee:ff)")
    return bytes(int(part, 16) for part in re.split(r"[:-]", text.strip()))


def format_mac(mac: bytes) -> str:
    if len(mac) != 6:
        raise ValueError(f"MAC address {mac!r} must be 6 bytes, got {len(mac)}")
    return ":".join(f"{b:02x}" for b in mac)


def arp_request(
    sender_mac: bytes, sender_ip: IPv4Address, target_ip: IPv4Address, eth_dst: bytes = BROADCAST_MAC
) -> bytes:
    """A client's ARP request (who-has target_ip), padded to 60 bytes: for tests, the lab and benchmarks."""
    frame = eth_dst + sender_mac + struct.pack("!HHHBBH", ETHERTYPE_ARP, 1, 0x0800, 6, 4, 1)
    frame += sender_mac + sender_ip.packed + bytes(6) + target_ip.packed
    return frame.ljust(MIN_FRAME, b"\x00")


def solicited_node(target: IPv6Address) -> tuple[IPv6Address, bytes]:
    """The solicited-node multicast address of `target` and its Ethernet multicast MAC."""
    group = IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + target.packed[13:])
    return group, b"\x33\x33" + group.packed[12:]


def neighbor_solicitation(sender_mac: bytes, sender_ip: IPv6Address, target: IPv6Address) -> bytes:
    """A client's NS for `target` to its solicited-node group, with a source link-layer option (86 bytes)."""
    group, group_mac = solicited_node(target)
    icmp = bytearray(
        struct.pack("!BBHI16sBB6s", ICMP6_NS, 0, 0, 0, target.packed, OPT_SOURCE_LLADDR, 1, sender_mac)
    )
    struct.pack_into("!H", icmp, 2, icmpv6_checksum(sender_ip.packed, group.packed, bytes(icmp)))
    ipv6 = struct.pack(
        "!IHBB16s16s", 0x60000000, len(icmp), NEXT_HEADER_ICMP6, 255, sender_ip.packed, group.packed
    )
    return group_mac + sender_mac + struct.pack("!H", ETHERTYPE_IPV6) + ipv6 + bytes(icmp)
