"""metallb_fast.dataplane.ownership: the owned-table handling every backend shares (no root, no sockets)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from metallb_fast.dataplane import ownership, packets
from metallb_fast.dataplane.base import AddressCounters, ResponderError, Verdict
from metallb_fast.dataplane.ownership import OwnedTableError

V4 = IPv4Address("192.0.2.10")
V4_B = IPv4Address("192.0.2.11")
V6 = IPv6Address("2001:db8::10")
MAC_A = bytes.fromhex("02aabbccdd01")
MAC_B = bytes.fromhex("02aabbccdd02")
OWNED = {(V4, "eth0"): MAC_A, (V6, "eth0"): MAC_B, (V4_B, "eth1"): MAC_B, (V4, "eth1"): MAC_B}


def test_a_valid_table_passes() -> None:
    ownership.validate(OWNED, "ring")
    ownership.validate({(V4, "eth0"): bytearray(MAC_A)}, "ring")
    ownership.validate({}, "ring")


@pytest.mark.parametrize(
    ("owned", "message"),
    [
        ({V4: MAC_A}, r"ring backend: owned key IPv4Address\('192.0.2.10'\) must be \(address, interface name\)"),
        ({(V4, "eth0", 1): MAC_A}, "must be \\(address, interface name\\)"),
        ({("192.0.2.10", "eth0"): MAC_A}, "address must be an IPv4Address/IPv6Address"),
        ({(V4, ""): MAC_A}, "interface must be a non-empty name"),
        ({(V4, 3): MAC_A}, "interface must be a non-empty name"),
        ({(V4, "eth0"): MAC_A[:5]}, "MAC for 192.0.2.10 on eth0 must be 6 bytes"),
        ({(V6, "eth0"): "02:aa:bb:cc:dd:01"}, "MAC for 2001:db8::10 on eth0 must be 6 bytes"),
    ],
)
def test_a_bad_table_names_the_key_and_is_both_error_kinds(owned: dict[Any, Any], message: str) -> None:
    # ResponderError for the ring/python callers, ValueError for the xdp callers: one error serves both.
    with pytest.raises(OwnedTableError, match=message) as caught:
        ownership.validate(owned, "ring")
    assert isinstance(caught.value, ResponderError) and isinstance(caught.value, ValueError)


def test_interfaces_of_keeps_the_fixed_ones_first_each_once() -> None:
    assert ownership.interfaces(OWNED) == ["eth0", "eth1"]
    assert ownership.interfaces(OWNED, ("eth9", "eth1")) == ["eth9", "eth1", "eth0"]
    assert ownership.interfaces({}, ("eth9",)) == ["eth9"]


def test_split_for_interface_answers_here_and_declines_only_what_is_owned_elsewhere() -> None:
    here, elsewhere = ownership.split(OWNED, "eth0")
    assert here == {V4: MAC_A, V6: MAC_B}
    assert elsewhere == frozenset({V4_B})  # V4 is owned on eth1 too, but answered here
    here, elsewhere = ownership.split(OWNED, "eth1")
    assert here == {V4_B: MAC_B, V4: MAC_B} and elsewhere == frozenset({V6})
    assert ownership.split(OWNED, "eth9") == ({}, frozenset({V4, V4_B, V6}))
    here, _ = ownership.split({(V4, "eth0"): bytearray(MAC_A)}, "eth0")
    assert type(here[V4]) is bytes


def test_announcement_is_metallbs_burst_for_the_owned_mac() -> None:
    assert ownership.announcement(OWNED, V4, "eth0", "python") == packets.gratuitous_arp(V4, MAC_A)
    assert ownership.announcement(OWNED, V4, "eth1", "python") == packets.gratuitous_arp(V4, MAC_B)
    assert ownership.announcement(OWNED, V6, "eth0", "python") == [packets.unsolicited_na(V6, MAC_B)]
    with pytest.raises(OwnedTableError, match="xdp backend: cannot announce 2001:db8::10 on eth1: not owned there"):
        ownership.announcement(OWNED, V6, "eth1", "xdp")


def test_responder_stats_lists_every_owned_key_and_every_declined_reason() -> None:
    counted = {(V4, "eth0"): AddressCounters(3, 2), (V4_B, "eth9"): AddressCounters(1, 1)}
    verdicts = {Verdict.ANSWERED: 3, Verdict.MALFORMED: 4, Verdict.HEARTBEAT: 9}
    stats = ownership.stats("ring", [(V4, "eth0"), (V6, "eth0")], counted, verdicts)
    assert stats.backend == "ring"
    assert stats.per_address == {**counted, (V6, "eth0"): AddressCounters()}  # a dropped key keeps its counts
    answering = {Verdict.ANSWERED, Verdict.HEARTBEAT}
    assert stats.declined == {v: (4 if v is Verdict.MALFORMED else 0) for v in Verdict if v not in answering}
    assert stats.requests == 4 and stats.replies == 3
    assert stats.heartbeats == 9, "reflected heartbeats are not declines, nor address replies"


def test_interface_index_names_a_missing_interface() -> None:
    assert ownership.interface_index("lo", "ring") >= 1
    with pytest.raises(ResponderError, match="ring backend: interface 'nope0' does not exist"):
        ownership.interface_index("nope0", "ring")


def test_prepare_goes_on_past_failures_and_collects_every_one() -> None:
    def open_one(name: str) -> int:
        if name.startswith("nope"):
            raise ownership.missing_interface(name, "ring")
        return len(name)

    done, failures = ownership.prepare(["eth0", "nope0", "eth10", "nope1"], open_one)
    assert done == {"eth0": 4, "eth10": 5}
    assert failures == {
        "nope0": "ring backend: interface 'nope0' does not exist in this network namespace",
        "nope1": "ring backend: interface 'nope1' does not exist in this network namespace",
    }


def test_prepare_lets_other_errors_through() -> None:
    def broken(name: str) -> None:
        raise KeyError(name)  # a bug, not an interface the backend cannot use: must not be swallowed

    with pytest.raises(KeyError):
        ownership.prepare(["eth0"], broken)


def test_servable_drops_only_the_failed_interfaces_entries() -> None:
    assert ownership.servable(OWNED, {"eth1"}) == {(V4, "eth0"): MAC_A, (V6, "eth0"): MAC_B}
    assert ownership.servable(OWNED, ()) == OWNED
    assert ownership.servable({(V4, "eth0"): bytearray(MAC_A)}, ()) == {(V4, "eth0"): MAC_A}
    assert type(ownership.servable({(V4, "eth0"): bytearray(MAC_A)}, ())[(V4, "eth0")]) is bytes


def test_check_served_names_every_failed_interface_once() -> None:
    ownership.check_served("xdp", {})
    with pytest.raises(ownership.InterfacesUnavailable) as caught:
        ownership.check_served("xdp", {"nope1": "gone", "eth3": "another XDP program"})
    error = caught.value
    assert isinstance(error, ResponderError)
    assert error.failures == {"eth3": "another XDP program", "nope1": "gone"}
    assert str(error).startswith("xdp backend: not serving interface(s) eth3, nope1 (the rest of the owned table")
    assert str(error).endswith(": eth3: another XDP program; nope1: gone")


def test_moved_names_interfaces_gone_or_now_another_link() -> None:
    lo = ownership.interface_index("lo", "ring")
    assert ownership.moved({"lo": lo}) == []
    assert ownership.moved({"lo": lo + 1000, "nope0": 7}) == ["lo", "nope0"]


def test_heartbeat_interfaces_checks_the_setting() -> None:
    assert ownership.heartbeat_interfaces(7947, ["eth0", "eth1", "eth0"], "ring") == (7947, ("eth0", "eth1"))
    assert ownership.heartbeat_interfaces(0, ["eth0"], "ring") == (0, ()), "port 0 is off"
    assert ownership.heartbeat_interfaces(7947, (), "ring") == (0, ()), "no interfaces is off"
    with pytest.raises(OwnedTableError, match=r"ring backend: heartbeat port 65536 must be an integer 1\.\.65535"):
        ownership.heartbeat_interfaces(65536, ["eth0"], "ring")
    with pytest.raises(OwnedTableError, match="heartbeat interfaces 'eth0': give a collection of names"):
        ownership.heartbeat_interfaces(7947, "eth0", "ring")
    with pytest.raises(OwnedTableError, match="heartbeat interface '' must be a non-empty name"):
        ownership.heartbeat_interfaces(7947, ["eth0", ""], "xdp")


def test_interface_mac_reads_this_namespace_and_names_a_missing_interface() -> None:
    assert ownership.interface_mac("lo", "python") == bytes(6)
    assert ownership.interface_mac("lo", "xdp", None, ethernet_only=True) == bytes(6)  # loopback: a 6-byte address
    with pytest.raises(ResponderError, match="python backend: interface 'nope0' does not exist"):
        ownership.interface_mac("nope0", "python")
