"""Relay messages: round trips with and without a key; a wrong key, junk or a heartbeat are never relay messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metallb_fast.dataplane import heartbeat
from metallb_fast.membership import relay_wire
from metallb_fast.membership.relay_wire import RelayReply, RelayRequest

KEY = relay_wire.relay_key(b"k" * 32)
OTHER = relay_wire.relay_key(b"o" * 32)


def test_round_trips_with_and_without_a_key() -> None:
    for message in (RelayRequest(7, ("192.0.2.1", 7947)), RelayRequest(2**64 - 1, ("2001:db8::1", 1)),
                    RelayReply(9, True), RelayReply(9, False)):
        for key in (None, KEY):
            assert relay_wire.decode(relay_wire.encode(message, key), key) == message


def test_a_wrong_or_missing_key_is_refused() -> None:
    data = relay_wire.encode(RelayReply(1, False), KEY)
    assert relay_wire.decode(data, OTHER) is None
    assert relay_wire.decode(relay_wire.encode(RelayReply(1, False), None), KEY) is None


def test_heartbeats_are_not_relay_messages_and_relay_messages_are_not_heartbeats() -> None:
    request = heartbeat.build_request(5, 6)
    assert relay_wire.decode(request, None) is None
    for key in (None, KEY):
        assert heartbeat.parse_reply(relay_wire.encode(RelayReply(5, True), key)) is None


@given(st.binary(max_size=80))
def test_junk_never_raises(data: bytes) -> None:
    assert relay_wire.decode(data, None) is None or isinstance(relay_wire.decode(data, None), RelayRequest | RelayReply)
    assert relay_wire.decode(data, KEY) is None
