"""Request frames for the dataplane tests, built by hand (struct, offsets from RFC 826 / RFC 4861).

Deliberately not packets.py's own builders: the oracle and the backends are checked against an independent
reading of the wire format. Every field a test may want wrong is a parameter; the defaults are a valid request
from CLIENT for VIP, which the tests own with OWNED_MAC. NS frames carry the checksum a receiver verifies (over the
message as its payload length delimits it) unless told otherwise.
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
    eth_src: bytes = CLIENT_MAC,
    sha: bytes = CLIENT_MAC,
    htype: int = 1,
    ptype: int = 0x0800,
    hlen: int = 6,
    plen: int = 4,
    pad: bytes = ARP_PAD,
) -> bytes:
    """An ARP frame from `eth_src` asking for `tpa`: 42 bytes, then `pad` (b"" for the bare 42)."""
    eth = eth_dst + eth_src + b"\x08\x06"
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
    checksum: int | None = None,
    eth_src: bytes = CLIENT_MAC,
) -> bytes:
    """An NS from `eth_src` for `target` to its solicited-node group (payload length from the options unless
    `payload_len` says otherwise); `options` defaults to one source link-layer option. `checksum` None: the one that
    verifies over the first `payload_len` bytes of the message and the trailer (RFC 4443 2.3)."""
    group = b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + target.packed[13:]
    if eth_dst is None:
        eth_dst = b"\x33\x33" + group[12:]
    if options is None:
        options = sllao()
    icmp = struct.pack("!BBHI", icmp_type, code, 0, 0) + target.packed + options
    length = len(icmp) if payload_len is None else payload_len
    if checksum is None:
        pseudo = src.packed + group + struct.pack("!IxxxB", length, 58)
        checksum = ~ones_sum(pseudo + (icmp + trailer)[:length]) & 0xFFFF
    icmp = icmp[:2] + checksum.to_bytes(2, "big") + icmp[4:]
    ip6 = struct.pack("!IHBB", version << 28, length, next_header, hop_limit) + src.packed + group
    return eth_dst + eth_src + b"\x86\xdd" + ip6 + icmp + trailer


def vlan_tagged(frame: bytes, vid: int = 5) -> bytes:
    """`frame` with an 802.1Q tag inserted after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


# --- data-path heartbeats (docs/fastpath.md, Heartbeats): UDP, payload b"MLBF" | 1 | kind | 0 | nonce | seq | 0 -------

NODE4 = IPv4Address("192.0.2.1")  # the node a heartbeat is sent to (its own interface address)
NODE6 = IPv6Address("2001:db8::1")
NODE_MAC = bytes.fromhex("02aabbccdd0a")  # the ingress interface's own MAC
HEARTBEAT_PORT = 7947
PEER_PORT = 40000


def ones_sum(data: bytes) -> int:
    """One's complement sum of 16-bit big-endian words (odd length padded), folded to 16 bits."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return total


def heartbeat_payload(
    *, kind: int = 1, nonce: int = 0x0123456789ABCDEF, seq: int = 7, magic: bytes = b"MLBF", version: int = 1,
    flags: int = 0, reserved: int = 0,
) -> bytes:
    return magic + struct.pack("!BBHQII", version, kind, flags, nonce, seq, reserved)


def _udp(ports: tuple[int, int], payload: bytes, addresses: bytes, length: int | None, checksum: int | None) -> bytes:
    """A UDP header + payload between `addresses` (source + destination, packed; 4 or 16 bytes each);
    checksum None = computed (RFC 768 / RFC 8200 pseudo-header; a computed 0 is sent as 0xffff)."""
    size = 8 + len(payload) if length is None else length
    pseudo = addresses + (struct.pack("!BBH", 0, 17, size) if len(addresses) == 8 else struct.pack("!IxxxB", size, 17))
    if checksum is None:
        checksum = (~ones_sum(pseudo + struct.pack("!HHHH", *ports, size, 0) + payload) & 0xFFFF) or 0xFFFF
    return struct.pack("!HHHH", *ports, size, checksum) + payload


def heartbeat4(
    payload: bytes | None = None,
    *,
    dst_port: int = HEARTBEAT_PORT,
    src_port: int = PEER_PORT,
    eth_dst: bytes = NODE_MAC,
    src: IPv4Address = CLIENT4,
    dst: IPv4Address = NODE4,
    ttl: int = 64,
    options: bytes = b"",
    flags_fragment: int = 0x4000,  # DF
    protocol: int = 17,
    total_length: int | None = None,
    udp_length: int | None = None,
    checksum: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """A heartbeat request from CLIENT4:PEER_PORT (CLIENT_MAC) to NODE4:HEARTBEAT_PORT (NODE_MAC) over IPv4."""
    payload = heartbeat_payload() if payload is None else payload
    udp = _udp((src_port, dst_port), payload, src.packed + dst.packed, udp_length, checksum)
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(udp) if total_length is None else total_length
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 0x1234, flags_fragment, ttl, protocol, 0,
                         src.packed, dst.packed) + options
    header = header[:10] + (~ones_sum(header) & 0xFFFF).to_bytes(2, "big") + header[12:]
    return eth_dst + CLIENT_MAC + b"\x08\x00" + header + udp + trailer


def heartbeat6(
    payload: bytes | None = None,
    *,
    dst_port: int = HEARTBEAT_PORT,
    src_port: int = PEER_PORT,
    eth_dst: bytes = NODE_MAC,
    src: IPv6Address = CLIENT6,
    dst: IPv6Address = NODE6,
    hop_limit: int = 64,
    extension: bytes = b"",  # extension headers between IPv6 and UDP, as they are (the last one's next header: 17)
    extension_type: int = 0,  # the IPv6 next header when `extension` is given
    payload_length: int | None = None,
    udp_length: int | None = None,
    checksum: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """A heartbeat request from CLIENT6:PEER_PORT (CLIENT_MAC) to NODE6:HEARTBEAT_PORT (NODE_MAC) over IPv6."""
    payload = heartbeat_payload() if payload is None else payload
    udp = _udp((src_port, dst_port), payload, src.packed + dst.packed, udp_length, checksum)
    body, next_header = extension + udp, (extension_type if extension else 17)
    length = len(body) if payload_length is None else payload_length
    ip6 = struct.pack("!IHBB", 0x60000000, length, next_header, hop_limit) + src.packed + dst.packed
    return eth_dst + CLIENT_MAC + b"\x86\xdd" + ip6 + body + trailer


def udp_checksum_ok(frame: bytes) -> bool:
    """Whether the UDP checksum of a heartbeat frame (no IP options, no extension header) verifies."""
    if frame[12:14] == b"\x08\x00":
        udp = frame[34:]
        length = int.from_bytes(udp[4:6], "big")
        if udp[6:8] == b"\x00\x00":
            return True  # IPv4: no checksum
        pseudo = frame[26:34] + struct.pack("!BBH", 0, 17, length)
    else:
        udp = frame[54:]
        length = int.from_bytes(udp[4:6], "big")
        pseudo = frame[22:54] + struct.pack("!IxxxB", length, 17)
    return ones_sum(pseudo + udp[:length]) == 0xFFFF


def pseudo_header_sum(frame: bytes) -> int:
    """The folded sum of a heartbeat frame's UDP pseudo-header: what a sender's kernel leaves in the checksum field
    for checksum offload to finish (CHECKSUM_PARTIAL, seen on frames that crossed veth)."""
    if frame[12:14] == b"\x08\x00":
        return ones_sum(frame[26:34] + struct.pack("!BBH", 0, 17, int.from_bytes(frame[38:40], "big")))
    return ones_sum(frame[22:54] + struct.pack("!IxxxB", int.from_bytes(frame[58:60], "big"), 17))


def with_udp_checksum(frame: bytes, checksum: int) -> bytes:
    """A heartbeat frame (no IP options, no extension header) with its UDP checksum field set to `checksum`."""
    at = 40 if frame[12:14] == b"\x08\x00" else 60
    return frame[:at] + checksum.to_bytes(2, "big") + frame[at + 2 :]


def heartbeat_corpus() -> list[tuple[str, bytes]]:
    """Heartbeat frames for an interface reflecting HEARTBEAT_PORT to NODE_MAC: every branch of docs/fastpath.md's
    heartbeat decision, and the boundaries around it."""
    v4, v6 = heartbeat4(), heartbeat6()
    hop_by_hop, fragment = bytes([17, 0]) + bytes(6), bytes([17, 0, 0, 1]) + bytes(4)  # in front of UDP
    frames = [
        ("hb v4 request", v4),
        ("hb v6 request", v6),
        ("hb v4 request without checksum", heartbeat4(checksum=0)),
        ("hb v4 request checksum 1", with_udp_checksum(v4, 1)),
        ("hb v6 request checksum 1", with_udp_checksum(v6, 1)),
        ("hb v6 request checksum 0", heartbeat6(checksum=0)),
        ("hb v4 request checksum left for offload", with_udp_checksum(v4, pseudo_header_sum(v4))),
        ("hb v6 request checksum left for offload", with_udp_checksum(v6, pseudo_header_sum(v6))),
        ("hb v4 request with ethernet padding", heartbeat4(trailer=bytes(10))),
        ("hb v6 request with trailer", heartbeat6(trailer=b"\xa5" * 7)),
        ("hb v4 request ttl 1", heartbeat4(ttl=1)),
        ("hb v6 request hop limit 255", heartbeat6(hop_limit=255)),
        ("hb v4 request without DF", heartbeat4(flags_fragment=0)),
        ("hb v4 request with the reserved IP flag", heartbeat4(flags_fragment=0x8000)),
        ("hb v4 request flags and reserved set", heartbeat4(heartbeat_payload(flags=0xFFFF, reserved=0xFFFFFFFF))),
        ("hb v4 request from the heartbeat port", heartbeat4(src_port=HEARTBEAT_PORT)),
        ("hb v4 request nonce 0 seq 0", heartbeat4(heartbeat_payload(nonce=0, seq=0))),
        ("hb v6 request nonce and seq all ones", heartbeat6(heartbeat_payload(nonce=(1 << 64) - 1, seq=(1 << 32) - 1))),
        ("hb v4 reply", heartbeat4(heartbeat_payload(kind=2))),
        ("hb v6 reply", heartbeat6(heartbeat_payload(kind=2))),
        ("hb v4 to another port", heartbeat4(dst_port=HEARTBEAT_PORT - 1)),
        ("hb v6 to another port", heartbeat6(dst_port=HEARTBEAT_PORT + 1)),
        ("hb v4 tcp to the port", heartbeat4(protocol=6)),
        ("hb v4 to another mac", heartbeat4(eth_dst=OTHER_MAC)),
        ("hb v6 to another mac", heartbeat6(eth_dst=OTHER_MAC)),
        ("hb v4 to broadcast", heartbeat4(eth_dst=BCAST)),
        ("hb v6 to all-nodes multicast", heartbeat6(eth_dst=b"\x33\x33\x00\x00\x00\x01")),
        ("hb v4 bad magic", heartbeat4(heartbeat_payload(magic=b"MLBX"))),
        ("hb v6 bad magic", heartbeat6(heartbeat_payload(magic=b"mlbf"))),
        ("hb v4 version 2", heartbeat4(heartbeat_payload(version=2))),
        ("hb v6 version 0", heartbeat6(heartbeat_payload(version=0))),
        ("hb v4 kind 0", heartbeat4(heartbeat_payload(kind=0))),
        ("hb v6 kind 3", heartbeat6(heartbeat_payload(kind=3))),
        ("hb v4 kind 255", heartbeat4(heartbeat_payload(kind=255))),
        ("hb v4 payload 23 bytes", heartbeat4(heartbeat_payload()[:23])),
        ("hb v6 payload 25 bytes", heartbeat6(heartbeat_payload() + b"\x00")),
        ("hb v4 empty datagram", heartbeat4(b"")),
        ("hb v4 udp length 31", heartbeat4(udp_length=31)),
        ("hb v6 udp length 33", heartbeat6(udp_length=33)),
        ("hb v4 total length 53", heartbeat4(total_length=53, trailer=b"\x00")),
        ("hb v4 total length beyond frame", heartbeat4(total_length=60)),
        ("hb v6 payload length 31", heartbeat6(payload_length=31)),
        ("hb v6 payload length beyond frame", heartbeat6(payload_length=40)),
        ("hb v4 with ip options", heartbeat4(options=b"\x01\x01\x01\x00")),
        ("hb v4 with 40 bytes of ip options", heartbeat4(options=b"\x01" * 40)),
        ("hb v4 first fragment", heartbeat4(flags_fragment=0x2000)),
        ("hb v4 later fragment", heartbeat4(flags_fragment=0x0003)),
        ("hb v4 last fragment", heartbeat4(flags_fragment=0x0010)),
        ("hb v4 header length 4", v4[:14] + bytes([0x44]) + v4[15:]),
        ("hb v4 ip version 6", v4[:14] + bytes([0x65]) + v4[15:]),
        ("hb v6 behind hop-by-hop options", heartbeat6(extension=hop_by_hop, extension_type=0)),
        ("hb v6 behind a routing header", heartbeat6(extension=bytes([17, 1]) + bytes(14), extension_type=43)),
        ("hb v6 behind destination options", heartbeat6(extension=hop_by_hop, extension_type=60)),
        ("hb v6 first fragment", heartbeat6(extension=fragment, extension_type=44)),
        ("hb v6 later fragment", heartbeat6(extension=bytes([17, 0, 0, 8]) + bytes(4), extension_type=44)),
        ("hb v6 behind an unknown extension", heartbeat6(extension=hop_by_hop, extension_type=135)),
        ("hb v6 behind two extensions", heartbeat6(extension=bytes([60, 0]) + bytes(6) + hop_by_hop, extension_type=0)),
        ("hb v6 hop-by-hop past the frame", heartbeat6(extension=bytes([17, 200]) + bytes(6), extension_type=0)),
        ("hb v6 hop-by-hop cut short", heartbeat6(extension=hop_by_hop, extension_type=0)[:55]),
        ("hb v6 fragment header cut short", heartbeat6(extension=fragment, extension_type=44)[:60]),
        ("hb vlan tagged", vlan_tagged(v4)),
    ]
    frames += [(f"hb v4 truncated to {n}", v4[:n]) for n in range(14, len(v4))]
    frames += [(f"hb v6 truncated to {n}", v6[:n]) for n in range(54, len(v6))]
    return frames
