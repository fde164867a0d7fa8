"""heartbeat.py, the wire format of the data-path heartbeat: exact bytes, parse errors, and the checksum rule.

Expected bytes are written out by hand from the layout in the module docstring (docs/fastpath.md, Heartbeats), not
produced by the module under test.
"""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_fast.dataplane import heartbeat
from metallb_fast.dataplane.heartbeat import Heartbeat, Kind, MalformedHeartbeat, Reflector

REQUEST = bytes.fromhex("4d4c4246" "01" "01" "0000" "0123456789abcdef" "00000007" "00000000")


def test_a_request_is_24_bytes_laid_out_as_documented() -> None:
    assert heartbeat.build_request(0x0123456789ABCDEF, 7) == REQUEST
    assert heartbeat.PAYLOAD_LEN == 24 and heartbeat.UDP_LEN == 32
    assert heartbeat.DEFAULT_PORT == 7947
    assert REQUEST[heartbeat.KIND_OFFSET] == 1


def test_parse_reads_back_what_build_wrote() -> None:
    assert heartbeat.parse(REQUEST) == Heartbeat(0x0123456789ABCDEF, 7, Kind.REQUEST)
    reply = heartbeat.build(Heartbeat(2**64 - 1, 2**32 - 1, Kind.REPLY))
    assert reply == bytes.fromhex("4d4c4246" "01" "02" "0000") + b"\xff" * 12 + bytes(4)
    assert heartbeat.parse(reply) == Heartbeat(2**64 - 1, 2**32 - 1, Kind.REPLY)


def test_flags_and_reserved_are_ignored_on_receipt() -> None:
    payload = REQUEST[:6] + b"\xff\xff" + REQUEST[8:20] + b"\xff" * 4
    assert heartbeat.parse(payload) == heartbeat.parse(REQUEST)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (REQUEST[:23], "23 bytes, must be exactly 24"),
        (REQUEST + b"\x00", "25 bytes, must be exactly 24"),
        (b"", "0 bytes"),
        (b"MLBX" + REQUEST[4:], "magic is b'MLBX', must be b'MLBF'"),
        (REQUEST[:4] + b"\x02" + REQUEST[5:], "version is 2, this node speaks version 1"),
        (REQUEST[:5] + b"\x00" + REQUEST[6:], "kind is 0, must be 1 (request) or 2 (reply)"),
        (REQUEST[:5] + b"\x03" + REQUEST[6:], "kind is 3"),
    ],
)
def test_parse_names_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedHeartbeat, match=re.escape(message)):
        heartbeat.parse(payload)
    assert heartbeat.parse_reply(payload) is None


def test_parse_reply_takes_only_reflections() -> None:
    assert heartbeat.parse_reply(REQUEST) is None, "a request (e.g. another peer's, to our own socket) is not a reply"
    reflected = REQUEST[:5] + b"\x02" + REQUEST[6:]
    assert heartbeat.parse_reply(reflected) == Heartbeat(0x0123456789ABCDEF, 7, Kind.REPLY)
    assert heartbeat.parse_reply(b"\x82\xa4relay-message") is None


@given(st.binary(max_size=40))
def test_parse_reply_never_raises(data: bytes) -> None:
    heartbeat.parse_reply(data)


@pytest.mark.parametrize(("nonce", "seq"), [(-1, 0), (2**64, 0), (0, -1), (0, 2**32)])
def test_nonce_and_seq_must_fit_their_fields(nonce: int, seq: int) -> None:
    with pytest.raises(ValueError, match="must fit in"):
        heartbeat.build_request(nonce, seq)


def test_ports_and_reflectors_are_checked() -> None:
    assert heartbeat.check_port(0) == 0 and heartbeat.check_port(65535) == 65535
    for bad in (-1, 65536, True, "7947", 7947.0):
        with pytest.raises(ValueError, match="heartbeat port"):
            heartbeat.check_port(bad)  # type: ignore[arg-type]
    assert Reflector(7947, b"\x02" * 6).port == 7947
    with pytest.raises(ValueError, match=r"needs a port 1\.\.65535"):
        Reflector(0, b"\x02" * 6)
    with pytest.raises(ValueError, match="MAC"):
        Reflector(7947, b"\x02" * 5)


# ---------------------------------------------------------------------------------------------------------------
# reflected_checksum: the incremental update (RFC 1624 eqn. 3) equals a full recomputation


def ones_sum(data: bytes) -> int:
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return total


def full_checksum(pseudo: bytes, header: bytes, payload: bytes) -> int:
    return (~ones_sum(pseudo + header[:6] + b"\x00\x00" + payload) & 0xFFFF) or 0xFFFF


@given(nonce=st.integers(0, 2**64 - 1), seq=st.integers(0, 2**32 - 1), addresses=st.binary(min_size=32, max_size=32),
       ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)), ipv4=st.booleans())
def test_the_update_equals_recomputing_the_reflection(
    nonce: int, seq: int, addresses: bytes, ports: tuple[int, int], ipv4: bool
) -> None:
    src, dst = (addresses[:4], addresses[4:8]) if ipv4 else (addresses[:16], addresses[16:])
    length = heartbeat.UDP_LEN
    pseudo = src + dst + (struct.pack("!BBH", 0, 17, length) if ipv4 else struct.pack("!IxxxB", length, 17))
    request = heartbeat.build_request(nonce, seq)
    header = struct.pack("!HHHH", *ports, length, 0)
    sent = full_checksum(pseudo, header, request)
    reply = request[:5] + b"\x02" + request[6:]
    reflected_pseudo = dst + src + pseudo[len(src) * 2 :]
    expected = full_checksum(reflected_pseudo, struct.pack("!HHHH", ports[1], ports[0], length, 0), reply)
    assert heartbeat.reflected_checksum(sent, ipv4) == expected


def test_update_edge_cases() -> None:
    assert heartbeat.reflected_checksum(0, ipv4=True) == 0, "IPv4 without a checksum stays without"
    assert heartbeat.reflected_checksum(0x0001, ipv4=True) == 0xFFFF, "a computed 0 is sent as 0xffff"
    assert heartbeat.reflected_checksum(0x0001, ipv4=False) == 0xFFFF
    assert heartbeat.reflected_checksum(0xFFFF, ipv4=False) == 0xFFFE
    assert heartbeat.reflected_checksum(0x1234, ipv4=True) == 0x1233
