"""The memberlist protocol's messages as plain values (hashicorp/memberlist net.go, protocol version 2..5).

Field names follow the Go structs (the msgpack map keys are the Go names: `SeqNo`, `Node`, ...). Addresses are the
raw bytes memberlist carries (4 bytes for IPv4, 16 for IPv6); names are str. These values are what the codec
(`wire`) produces and consumes and what the state machine (`swim`) reasons about: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum


class MessageType(IntEnum):
    """The first byte of every memberlist message; the numbers are the protocol."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeState(IntEnum):
    """A member's state as push-pull carries it (memberlist's NodeStateType)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


# [protocol min, max, current, delegate min, max, current]: what memberlist 0.2-0.5 advertises.
DEFAULT_VSN = bytes([1, 5, 2, 0, 0, 0])


@dataclass(frozen=True)
class Ping:
    seq_no: int
    node: str  # the target's name: a receiver drops a ping meant for another name
    source_addr: bytes = b""  # where to send the ack (empty: the UDP source)
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True)
class IndirectPing:
    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True)
class Ack:
    seq_no: int
    payload: bytes = b""


@dataclass(frozen=True)
class Nack:
    seq_no: int


@dataclass(frozen=True)
class Suspect:
    incarnation: int
    node: str
    from_: str  # Go field `From`


@dataclass(frozen=True)
class Alive:
    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes = b""
    vsn: bytes = DEFAULT_VSN


@dataclass(frozen=True)
class Dead:
    incarnation: int
    node: str
    from_: str  # Node == From means the node left gracefully

    @property
    def is_leave(self) -> bool:
        return self.node == self.from_


@dataclass(frozen=True)
class PushNodeState:
    name: str
    addr: bytes
    port: int
    incarnation: int
    state: NodeState
    meta: bytes = b""
    vsn: bytes = DEFAULT_VSN


@dataclass(frozen=True)
class PushPull:
    """A stream's whole push-pull exchange (header + node states + user state)."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes = b""


@dataclass(frozen=True)
class User:
    payload: bytes


@dataclass(frozen=True)
class ErrorResponse:
    error: str


Message = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | PushPull | User | ErrorResponse


def address_bytes(ip: str) -> bytes:
    """The form memberlist carries an address in: 4 bytes for IPv4 (also an IPv4-mapped IPv6), 16 for IPv6."""
    parsed = ipaddress.ip_address(ip)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.packed


def address_text(addr: bytes) -> str:
    """The printable form of a carried address; "" for anything that is not 4 or 16 bytes."""
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        address = ipaddress.IPv6Address(addr)
        return str(address.ipv4_mapped or address)
    return ""
