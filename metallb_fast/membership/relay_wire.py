"""The relay messages of the data-path detector (sans-IO): "heartbeat this target for me" and its answer.

They travel between speakers' userspace on the heartbeat port, beside the heartbeats the kernel reflects, with the
same 8-byte header (magic, version, kind, flags) but kinds the fast path never answers (3, 4). With a memberlist key
they carry a truncated HMAC-SHA256 under a key derived from it, so nobody without the key can make a node confirm
a death (the verdict itself is then gossiped through memberlist's encrypted channel).

request (kind 3): header | nonce u64 | target port u16 | address length u8 (4/16) | 0 | address | [mac 16]
reply   (kind 4): header (flags bit 0: the target answered) | nonce u64 | [mac 16]
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass

from metallb_fast.dataplane.heartbeat import MAGIC, VERSION

KIND_RELAY_REQUEST = 3
KIND_RELAY_REPLY = 4
_HEADER = struct.Struct("!4sBBH")
_NONCE = struct.Struct("!Q")
_TARGET = struct.Struct("!HBx")
MAC_SIZE = 16
ALIVE = 0x1


@dataclass(frozen=True)
class RelayRequest:
    nonce: int
    target: tuple[str, int]


@dataclass(frozen=True)
class RelayReply:
    nonce: int
    alive: bool


def relay_key(memberlist_key: bytes | None) -> bytes | None:
    """A key of its own for the relay MAC, derived from the memberlist key (never the AES key itself)."""
    return hashlib.sha256(b"metallb-fast relay\x00" + memberlist_key).digest() if memberlist_key else None


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:MAC_SIZE]


def encode(message: RelayRequest | RelayReply, key: bytes | None) -> bytes:
    if isinstance(message, RelayRequest):
        address = ipaddress.ip_address(message.target[0]).packed
        body = (_HEADER.pack(MAGIC, VERSION, KIND_RELAY_REQUEST, 0) + _NONCE.pack(message.nonce)
                + _TARGET.pack(message.target[1], len(address)) + address)
    else:
        flags = ALIVE if message.alive else 0
        body = _HEADER.pack(MAGIC, VERSION, KIND_RELAY_REPLY, flags) + _NONCE.pack(message.nonce)
    return body + (_mac(key, body) if key else b"")


def decode(data: bytes, key: bytes | None) -> RelayRequest | RelayReply | None:
    """None for anything that is not a well-formed relay message under our key (never raises)."""
    if key:
        if len(data) < MAC_SIZE:
            return None
        data, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if not hmac.compare_digest(mac, _mac(key, data)):
            return None
    if len(data) < _HEADER.size + _NONCE.size:
        return None
    magic, version, kind, flags = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        return None
    (nonce,) = _NONCE.unpack_from(data, _HEADER.size)
    rest = data[_HEADER.size + _NONCE.size:]
    if kind == KIND_RELAY_REPLY and not rest:
        return RelayReply(nonce, bool(flags & ALIVE))
    if kind != KIND_RELAY_REQUEST or len(rest) < _TARGET.size:
        return None
    port, length = _TARGET.unpack_from(rest)
    address = rest[_TARGET.size:]
    if length not in (4, 16) or len(address) != length or port == 0:
        return None
    return RelayRequest(nonce, (str(ipaddress.ip_address(address)), port))
