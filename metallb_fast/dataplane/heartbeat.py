"""The data-path heartbeat: its wire format, defined once (sans-IO: bytes in, values out).

A peer sends a request in a UDP datagram to a node's address, port DEFAULT_PORT unless configured otherwise; the
node's fast path (the same program, loop or thread that answers ARP/NDP, under the same liveness gate) reflects it
in place: addresses and ports swapped, kind set to REPLY, nothing else changed. A reply therefore proves that the
node's kernel path answers, not merely that some process on it is scheduled. The frame-level decision and the
reply bytes are packets.answer()'s (docs/fastpath.md, Heartbeats); xdp_responder.c and ext/ring.pyx follow them.

Payload, exactly PAYLOAD_LEN (24) bytes, big-endian:

    offset  size  field
    0       4     magic     b"MLBF"
    4       1     version   1
    5       1     kind      1 = request, 2 = reply
    6       2     flags     0 (sent as 0; ignored and echoed by the reflector)
    8       8     nonce     chosen by the sender (e.g. random per peer), echoed
    16      4     seq       chosen by the sender (e.g. incrementing), echoed
    20      4     reserved  0 (sent as 0; ignored and echoed)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

DEFAULT_PORT = 7947  # memberlist's 7946 + 1
MAGIC = b"MLBF"
VERSION = 1
PAYLOAD = struct.Struct("!4sBBHQII")
PAYLOAD_LEN = PAYLOAD.size  # 24
UDP_HLEN = 8
UDP_LEN = UDP_HLEN + PAYLOAD_LEN  # 32: the UDP length field of every heartbeat
KIND_OFFSET = 5  # within the payload: the only byte the reflector changes
MAX_NONCE = (1 << 64) - 1
MAX_SEQ = (1 << 32) - 1


class Kind(IntEnum):
    REQUEST = 1
    REPLY = 2


class MalformedHeartbeat(ValueError):
    """A datagram on the heartbeat port that is not a heartbeat of this version; the message says what is wrong."""


@dataclass(frozen=True)
class Heartbeat:
    nonce: int
    seq: int
    kind: Kind = Kind.REQUEST

    def __post_init__(self) -> None:
        if not 0 <= self.nonce <= MAX_NONCE:
            raise ValueError(f"heartbeat nonce {self.nonce} must fit in 64 bits (0..{MAX_NONCE})")
        if not 0 <= self.seq <= MAX_SEQ:
            raise ValueError(f"heartbeat seq {self.seq} must fit in 32 bits (0..{MAX_SEQ})")


def build(heartbeat: Heartbeat) -> bytes:
    """The 24-byte payload of `heartbeat` (flags and reserved 0)."""
    return PAYLOAD.pack(MAGIC, VERSION, int(heartbeat.kind), 0, heartbeat.nonce, heartbeat.seq, 0)


def build_request(nonce: int, seq: int) -> bytes:
    """What a peer sends to a node's heartbeat port."""
    return build(Heartbeat(nonce, seq, Kind.REQUEST))


def parse(payload: bytes) -> Heartbeat:
    """The heartbeat in a UDP payload, or MalformedHeartbeat saying what is wrong. Flags and reserved are ignored."""
    if len(payload) != PAYLOAD_LEN:
        raise MalformedHeartbeat(f"heartbeat payload is {len(payload)} bytes, must be exactly {PAYLOAD_LEN}")
    magic, version, kind, _flags, nonce, seq, _reserved = PAYLOAD.unpack(payload)
    if magic != MAGIC:
        raise MalformedHeartbeat(f"heartbeat magic is {magic!r}, must be {MAGIC!r}")
    if version != VERSION:
        raise MalformedHeartbeat(f"heartbeat version is {version}, this node speaks version {VERSION}")
    if kind not in (Kind.REQUEST, Kind.REPLY):
        raise MalformedHeartbeat(f"heartbeat kind is {kind}, must be 1 (request) or 2 (reply)")
    return Heartbeat(nonce, seq, Kind(kind))


def parse_reply(payload: bytes) -> Heartbeat | None:
    """The reflected heartbeat in a datagram a sender received, or None for anything else (a request, another
    protocol sharing the socket, junk). Never raises."""
    try:
        heartbeat = parse(payload)
    except MalformedHeartbeat:
        return None
    return heartbeat if heartbeat.kind is Kind.REPLY else None


def check_port(port: int) -> int:
    """`port` if it is a UDP port number (0 = heartbeats off), else ValueError naming it."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"heartbeat port {port!r} must be an integer 1..65535 (0 = off)")
    return port


@dataclass(frozen=True)
class Reflector:
    """An interface that reflects heartbeats: requests to UDP `port` sent to Ethernet address `mac` (its own).

    The Ethernet destination check keeps a node from answering for another node whose frames reach it anyway
    (a bridge flooding unknown unicast once the dead node's MAC has aged out, or a promiscuous NIC)."""

    port: int
    mac: bytes

    def __post_init__(self) -> None:
        if check_port(self.port) == 0:
            raise ValueError("a heartbeat Reflector needs a port 1..65535 (no Reflector = off)")
        if not isinstance(self.mac, bytes) or len(self.mac) != 6:
            raise ValueError(f"heartbeat Reflector MAC {self.mac!r} must be 6 bytes")


def reflected_checksum(checksum: int, ipv4: bool) -> int:
    """The UDP checksum of the reflection of a request whose checksum was `checksum` (RFC 1624 eqn. 3).

    Swapping addresses and ports leaves the one's complement sum alone; only the word (version, kind) changes,
    from (1, 1) to (1, 2). An IPv4 checksum of 0 (none) stays 0; a result of 0 is sent as 0xffff (RFC 768)."""
    if ipv4 and checksum == 0:
        return 0
    old_word = (VERSION << 8) | Kind.REQUEST
    new_word = (VERSION << 8) | Kind.REPLY
    total = (~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


# Memberlist node metadata of a member whose fast path reflects heartbeats, and on which port. Only such members are
# heartbeated: a MetalLB speaker (no metadata), or one of ours at MetalLB's timing, never reflects, and watching it
# would declare a healthy member dead.
META_PREFIX = b"metallb-fast heartbeat/1 port="


def heartbeat_meta(port: int) -> bytes:
    return META_PREFIX + str(port).encode()


def heartbeat_port_of(meta: bytes) -> int | None:
    if not meta.startswith(META_PREFIX):
        return None
    text = meta[len(META_PREFIX) :]
    if not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port <= 0xFFFF else None
