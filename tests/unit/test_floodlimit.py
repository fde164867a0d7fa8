"""The flood limit's pure parts: validation, the GCRA bucket with an injected clock, the key, the LRU bound."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.dataplane import packets
from metallb_fast.dataplane.base import Verdict
from metallb_fast.dataplane.floodlimit import (
    KEY_LEN,
    FloodLimit,
    FloodLimitError,
    TokenBuckets,
    conform,
    limit_answer,
    source_key,
)

CLIENT_MAC = bytes.fromhex("02cc00000001")
OTHER_MAC = bytes.fromhex("02cc00000002")
NODE_MAC = bytes.fromhex("02aa00000001")
VIP4, VIP6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")
OWNED = {VIP4: NODE_MAC, VIP6: NODE_MAC}
SECOND = 10**9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": -1}, "rate -1: must be 0"),
        ({"rate": float("nan")}, "rate nan"),
        ({"rate": float("inf")}, "rate inf"),
        ({"rate": 1e-4}, "between 0.001 and 1e"),
        ({"rate": 2e9}, "between 0.001 and 1e"),
        ({"rate": "100"}, "must be a number"),
        ({"rate": True}, "must be a number"),
        ({"burst": 0}, "burst 0: must be between 1 and"),
        ({"burst": 2.5}, "whole number"),
        ({"action": "reject"}, "action 'reject': must be one of pass, drop"),
    ],
)
def test_bad_limits_name_field_value_and_what_is_right(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FloodLimitError, match=message):
        FloodLimit(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_off() -> None:
    limit = FloodLimit()
    assert limit.enabled and limit.rate == 200 and limit.burst == 400 and limit.action == "pass"
    assert limit.interval_ns == 5_000_000 and limit.tolerance_ns == 399 * 5_000_000
    off = FloodLimit.off()
    assert not off.enabled and off.interval_ns == 0 and off.describe() == "off"
    assert FloodLimit(rate=3, burst=1, action="drop").interval_ns == 333_333_333  # rounded to whole ns


def test_a_burst_then_one_per_interval() -> None:
    buckets = TokenBuckets(FloodLimit(rate=10, burst=3))  # one per 100 ms
    key = bytes(KEY_LEN)
    assert [buckets.allow(key, 0) for _ in range(5)] == [True, True, True, False, False]
    assert not buckets.allow(key, 99_999_999), "the first token comes back one interval after the burst began"
    assert buckets.allow(key, 100_000_000)
    assert not buckets.allow(key, 100_000_001)
    # Idle for a long time: the bucket is full again, never fuller.
    later = 3600 * SECOND
    assert [buckets.allow(key, later) for _ in range(4)] == [True, True, True, False]


def test_over_the_limit_leaves_the_bucket_alone() -> None:
    assert conform(None, 50, 10, 20) == 60
    assert conform(40, 50, 10, 20) == 60, "a tat in the past counts from now"
    assert conform(70, 50, 10, 20) == 80
    assert conform(71, 50, 10, 20) is None
    buckets = TokenBuckets(FloodLimit(rate=1, burst=1))
    buckets.allow(b"k", 0)
    for t in range(1, 100):
        assert not buckets.allow(b"k", t * 1000)
    assert buckets.state() == {b"k": SECOND}, "limited frames did not push the next token further away"


def test_off_never_limits() -> None:
    buckets = TokenBuckets(FloodLimit.off())
    assert all(buckets.allow(b"k", 0) for _ in range(10_000))
    assert len(buckets) == 0, "off: no table entry at all"


def test_configure_keeps_the_buckets() -> None:
    buckets = TokenBuckets(FloodLimit(rate=1, burst=2))
    assert buckets.allow(b"k", 0) and buckets.allow(b"k", 0) and not buckets.allow(b"k", 0)
    buckets.configure(FloodLimit(rate=1, burst=3))
    assert buckets.allow(b"k", 0), "a deeper bucket admits one more at once"
    buckets.configure(FloodLimit.off())
    assert buckets.allow(b"k", 0)


def test_sources_are_independent_and_least_recently_used_go_first() -> None:
    buckets = TokenBuckets(FloodLimit(rate=1, burst=1), capacity=2)
    assert buckets.allow(b"a", 0) and buckets.allow(b"b", 0)
    assert not buckets.allow(b"a", 1), "a is limited, and now more recent than b"
    assert buckets.allow(b"c", 2), "a new source: b (least recently used) is evicted"
    assert set(buckets.state()) == {b"a", b"c"}
    assert buckets.allow(b"b", 3), "an evicted source starts with a full bucket"
    with pytest.raises(FloodLimitError, match="capacity 0"):
        TokenBuckets(FloodLimit(), capacity=0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1e6),
    burst=st.integers(1, 50),
    gaps=st.lists(st.integers(0, 2 * SECOND), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[int]) -> None:
    limit = FloodLimit(rate=rate, burst=burst)
    buckets = TokenBuckets(limit)
    now, answered = 0, 0
    for gap in gaps:
        now += gap
        answered += buckets.allow(b"k", now)
        assert answered <= burst + now // limit.interval_ns
    if all(gap >= limit.interval_ns for gap in gaps):
        assert answered == len(gaps), "a source within its rate is never limited"


def test_source_key_is_the_c_struct() -> None:
    arp = packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.100"), VIP4)
    assert source_key(arp) == CLIENT_MAC + b"\x04\x00" + IPv4Address("192.0.2.100").packed + bytes(12)
    ns = packets.neighbor_solicitation(CLIENT_MAC, IPv6Address("2001:db8::100"), VIP6)
    assert source_key(ns) == CLIENT_MAC + b"\x06\x00" + IPv6Address("2001:db8::100").packed
    assert len(source_key(arp)) == len(source_key(ns)) == KEY_LEN
    # The same MAC from another address, and another MAC from the same address, are other sources.
    keys = {
        source_key(arp),
        source_key(packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.101"), VIP4)),
        source_key(packets.arp_request(OTHER_MAC, IPv4Address("192.0.2.100"), VIP4)),
    }
    assert len(keys) == 3


def test_limit_answer_only_touches_answered_frames() -> None:
    buckets = TokenBuckets(FloodLimit(rate=1, burst=2))
    arp = packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.100"), VIP4)
    decided = [limit_answer(arp, packets.answer(arp, OWNED), buckets, 0) for _ in range(3)]
    assert [d.verdict for d in decided] == [Verdict.ANSWERED, Verdict.ANSWERED, Verdict.RATE_LIMITED]
    assert decided[2].reply is None and decided[2].target == VIP4
    ns = packets.neighbor_solicitation(CLIENT_MAC, IPv6Address("2001:db8::100"), VIP6)
    assert limit_answer(ns, packets.answer(ns, OWNED), buckets, 0).verdict is Verdict.ANSWERED, "its own bucket"
    unowned = packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.100"), IPv4Address("192.0.2.99"))
    for _ in range(5):
        assert limit_answer(unowned, packets.answer(unowned, OWNED), buckets, 0).verdict is Verdict.NOT_OWNED
    expired = limit_answer(arp, packets.answer(arp, OWNED, alive=False), buckets, 0)
    assert expired.verdict is Verdict.LIVENESS_EXPIRED, "declined frames keep their reason"
    assert limit_answer(arp, packets.answer(arp, OWNED), None, 0).verdict is Verdict.ANSWERED
