"""Sans-IO ARP / NDP / heartbeat codec: the oracle every responder (xdp, ring, python) is checked against.

`answer()` decides, for one received Ethernet frame, whether it is an ARP request, an IPv6 Neighbor
Solicitation or a data-path heartbeat request (heartbeat.py) this node must answer, and builds the reply byte
for byte as the fast-path spec requires. It never raises on any input bytes: a frame that cannot be understood
is a Verdict, not an exception.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Container, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from metallb_fast.dataplane import heartbeat
from metallb_fast.dataplane.base import IPAddress, Verdict
from metallb_fast.dataplane.heartbeat import Reflector

ETH_HLEN = 14
ETHERTYPE_IPV4 = 0x0800
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
# The longest NS whose checksum is verified (bounded for the same reasons): what a link of IPv6's minimum MTU (1280)
# carries. NDP messages are never fragmented (RFC 6980), and no NS comes near it (SEND's are under 700 bytes).
MAX_NS_LEN = 1280 - IPV6_HLEN
BROADCAST_V4 = b"\xff" * 4
LOOPBACK_V6 = IPv6Address("::1").packed

ICMP6_NS = 135
ICMP6_NA = 136
NEXT_HEADER_ICMP6 = 58
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
NA_FLAGS_SOLICITED = 0x60000000  # S=1 O=1 R=0
NA_FLAGS_UNSOLICITED = 0x20000000  # S=0 O=1 R=0

IPPROTO_UDP = 17
IPV4_HLEN = 20  # without options
IPV4_MF = 0x2000
IPV4_FRAGMENT_OFFSET = 0x1FFF
HEARTBEAT_V4_LEN = ETH_HLEN + IPV4_HLEN + heartbeat.UDP_LEN  # 66
HEARTBEAT_V6_LEN = ICMP6_OFF + heartbeat.UDP_LEN  # 86
# The IPv6 extension headers looked through (one of them, at most) to recognise a heartbeat carried behind it:
# hop-by-hop options, routing, destination options (length in 8-byte units after the first 8), fragment (8 bytes).
IPV6_EXTENSIONS = frozenset({0, 43, 60})
IPV6_FRAGMENT = 44


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
    heartbeats: Reflector | None = None,
) -> Answer:
    """Decide and build the reply for one received frame (decision order: docs/fastpath.md).

    `heartbeats`: how the ingress interface reflects heartbeats; None when it does not (the frames are then
    NOT_ARP_OR_NDP, as any other IP traffic)."""
    if not isinstance(frame, bytes):
        frame = bytes(frame)  # bytearray / memoryview from a socket: slices must be hashable bytes
    if len(frame) < ETH_HLEN:
        return Answer(Verdict.MALFORMED)
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETHERTYPE_ARP:
        return _answer_arp(frame, owned_here, owned_elsewhere, alive)
    if ethertype == ETHERTYPE_IPV6:
        whole_header = len(frame) >= ICMP6_OFF and frame[ETH_HLEN] >> 4 == 6
        if heartbeats is not None and whole_header and frame[20] != NEXT_HEADER_ICMP6:
            return _answer_heartbeat_v6(frame, heartbeats, alive)  # where _answer_ns would say NOT_ARP_OR_NDP
        return _answer_ns(frame, owned_here, owned_elsewhere, alive)
    if ethertype == ETHERTYPE_IPV4 and heartbeats is not None:
        return _answer_heartbeat_v4(frame, heartbeats, alive)
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
        return Verdict.OTHER_ETH_DST, None
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
    if _multicast_mac(frame[6]) or frame[28:32] == BROADCAST_V4:  # sender IP 0.0.0.0 (RFC 5227 probe) is answered
        return Answer(Verdict.BAD_SOURCE, target=target)
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
    if _multicast_mac(frame[6]) or frame[22] == 0xFF or frame[22:38] == LOOPBACK_V6:
        return Answer(Verdict.BAD_SOURCE, target=target)
    if frame[22:38] == bytes(16):
        return Answer(Verdict.GRATUITOUS, target=target)
    options = _scan_options(frame, ICMP6_OFF + NS_LEN, end)
    if options is not Verdict.ANSWERED:
        return Answer(options, target=target)
    if payload_len > MAX_NS_LEN:
        return Answer(Verdict.MALFORMED, target=target)
    if icmpv6_checksum(frame[22:38], frame[38:54], frame[ICMP6_OFF:end]) != 0:  # 0: the sum with it is 0xffff
        return Answer(Verdict.BAD_CHECKSUM, target=target)
    eth_dst = frame[0:6]
    verdict, mac = _lookup(target, eth_dst, _multicast_mac(frame[0]), owned_here, owned_elsewhere, alive)
    if mac is None:
        return Answer(verdict, target=target)
    reply = _neighbor_advertisement(frame[6:12], mac, frame[62:78], frame[22:38], NA_FLAGS_SOLICITED)
    return Answer(Verdict.ANSWERED, reply, target)


def _multicast_mac(first_octet: int) -> bool:
    """The I/G bit: a group (multicast or broadcast) address, never a station's source."""
    return bool(first_octet & 1)


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


def _be16(frame: bytes, offset: int) -> int:
    return (frame[offset] << 8) | frame[offset + 1]


def _to_port(frame: bytes, udp: int, port: int) -> bool:
    """Whether a UDP header at offset `udp` is in the frame and addressed to `port`."""
    return len(frame) >= udp + heartbeat.UDP_HLEN and _be16(frame, udp + 2) == port


def _answer_heartbeat_v4(frame: bytes, reflector: Reflector, alive: bool) -> Answer:
    """An IPv4 frame on an interface that reflects heartbeats (docs/fastpath.md, Heartbeats)."""
    if len(frame) < ETH_HLEN + IPV4_HLEN:
        return Answer(Verdict.NOT_ARP_OR_NDP)
    version, ihl = frame[ETH_HLEN] >> 4, frame[ETH_HLEN] & 0x0F
    if version != 4 or ihl < 5 or frame[23] != IPPROTO_UDP:
        return Answer(Verdict.NOT_ARP_OR_NDP)
    fragment = _be16(frame, 20)
    udp = ETH_HLEN + ihl * 4
    if fragment & IPV4_FRAGMENT_OFFSET or not _to_port(frame, udp, reflector.port):
        return Answer(Verdict.NOT_ARP_OR_NDP)  # a later fragment has no UDP header to be addressed by
    if ihl != 5 or fragment & IPV4_MF or _be16(frame, 16) != IPV4_HLEN + heartbeat.UDP_LEN:
        return Answer(Verdict.MALFORMED_HEARTBEAT)  # options, a first fragment, or not 52 bytes of IPv4
    if len(frame) < HEARTBEAT_V4_LEN:
        return Answer(Verdict.MALFORMED_HEARTBEAT)
    return _reflect(frame, udp, reflector, alive, ipv4=True)


def _answer_heartbeat_v6(frame: bytes, reflector: Reflector, alive: bool) -> Answer:
    """An IPv6 frame (at least a whole header, next header not ICMPv6) on an interface that reflects heartbeats."""
    next_header, udp, behind_extension = frame[20], ICMP6_OFF, False
    if next_header in IPV6_EXTENSIONS and len(frame) >= ICMP6_OFF + 2:
        next_header, udp, behind_extension = frame[ICMP6_OFF], ICMP6_OFF + (frame[ICMP6_OFF + 1] + 1) * 8, True
    elif next_header == IPV6_FRAGMENT and len(frame) >= ICMP6_OFF + 8 and _be16(frame, ICMP6_OFF + 2) & 0xFFF8 == 0:
        next_header, udp, behind_extension = frame[ICMP6_OFF], ICMP6_OFF + 8, True
    if next_header != IPPROTO_UDP or not _to_port(frame, udp, reflector.port):
        return Answer(Verdict.NOT_ARP_OR_NDP)
    if behind_extension or _be16(frame, 18) != heartbeat.UDP_LEN or len(frame) < HEARTBEAT_V6_LEN:
        return Answer(Verdict.MALFORMED_HEARTBEAT)
    return _reflect(frame, udp, reflector, alive, ipv4=False)


def _reflect(frame: bytes, udp: int, reflector: Reflector, alive: bool, ipv4: bool) -> Answer:
    """The shared end of both heartbeat decisions: a version-1 request to our MAC, still alive? Reflect it."""
    if _be16(frame, udp + 4) != heartbeat.UDP_LEN:
        return Answer(Verdict.MALFORMED_HEARTBEAT)
    payload = udp + heartbeat.UDP_HLEN
    try:
        received = heartbeat.parse(frame[payload : payload + heartbeat.PAYLOAD_LEN])
    except heartbeat.MalformedHeartbeat:
        return Answer(Verdict.MALFORMED_HEARTBEAT)
    if received.kind is not heartbeat.Kind.REQUEST:
        return Answer(Verdict.NOT_REQUEST)  # a reflection on its way back to a sender on this node
    if frame[0:6] != reflector.mac:
        return Answer(Verdict.OTHER_ETH_DST)  # for another host: flooded to us, or we are promiscuous
    if not alive:
        return Answer(Verdict.LIVENESS_EXPIRED)
    reply = bytearray(frame)  # same length: everything not named here is carried over unchanged
    _swap(reply, 0, 6)  # Ethernet destination and source
    if ipv4:
        _swap(reply, ETH_HLEN + 12, 4)  # source and destination address; TTL and header checksum unchanged
    else:
        _swap(reply, ETH_HLEN + 8, 16)  # hop limit unchanged
    _swap(reply, udp, 2)  # source and destination port
    reply[payload + heartbeat.KIND_OFFSET] = heartbeat.Kind.REPLY
    sent = _be16(frame, udp + 6)
    if sent == _ones_sum(_pseudo_header(frame, udp)):
        # What a sender's kernel leaves for checksum offload to finish (CHECKSUM_PARTIAL: the request came over
        # veth, or from this host): there is no checksum to update, so compute one.
        checksum = udp_checksum(bytes(reply), udp)
    else:
        checksum = heartbeat.reflected_checksum(sent, ipv4)
    reply[udp + 6 : udp + 8] = checksum.to_bytes(2, "big")
    return Answer(Verdict.HEARTBEAT, bytes(reply))


def _swap(frame: bytearray, offset: int, size: int) -> None:
    """Swap the two adjacent fields of `size` bytes at `offset` (source/destination pairs)."""
    first, second = frame[offset : offset + size], frame[offset + size : offset + 2 * size]
    frame[offset : offset + size], frame[offset + size : offset + 2 * size] = second, first


def udp_checksum(frame: bytes, udp: int) -> int:
    """The UDP checksum of the datagram at offset `udp` of an IPv4 (no options) or IPv6 (no extension header)
    frame, computed in full (RFC 768 / RFC 8200 pseudo-header; 0 is sent as 0xffff)."""
    datagram = frame[udp : udp + 6] + b"\x00\x00" + frame[udp + 8 : udp + _be16(frame, udp + 4)]
    return (~_ones_sum(_pseudo_header(frame, udp) + datagram) & 0xFFFF) or 0xFFFF


def _pseudo_header(frame: bytes, udp: int) -> bytes:
    """The pseudo-header of the UDP datagram at `udp` (RFC 768 for IPv4, RFC 8200 8.1 for IPv6)."""
    length = _be16(frame, udp + 4)
    if frame[12:14] == ETHERTYPE_IPV4.to_bytes(2, "big"):
        return frame[26:34] + struct.pack("!BBH", 0, IPPROTO_UDP, length)
    return frame[22:54] + struct.pack("!IxxxB", length, IPPROTO_UDP)


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 2.3: one's complement sum over the pseudo-header and the message (checksum field 0). Over a
    received message as it is, checksum field included: 0 when its checksum verifies."""
    data = src + dst + struct.pack("!IxxxB", len(message), NEXT_HEADER_ICMP6) + message
    return ~_ones_sum(data) & 0xFFFF  # no 0 -> 0xffff substitution (that is UDP's rule), same as the XDP fold


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
