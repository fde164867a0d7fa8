"""The one interface every responder (xdp, ring, python) offers to the speaker.

owned = {(address, interface_name): mac}: answer ARP (IPv4) / NDP (IPv6) for `address` only on `interface_name`,
with `mac` (6 bytes) as the link-layer address. serve_heartbeats(port, interfaces): reflect data-path heartbeats
(dataplane/heartbeat.py) arriving on those interfaces, under the same liveness gate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OwnedKey = tuple[IPAddress, str]
Owned = Mapping[OwnedKey, bytes]


class Verdict(str, Enum):
    """Why a frame was, or was not, answered. One counter per value, in every backend (MetalLB's drop reasons)."""

    ANSWERED = "answered"
    NOT_ARP_OR_NDP = "not_arp_or_ndp"
    MALFORMED = "malformed"
    NOT_REQUEST = "not_request"  # ARP reply, NA, other ICMPv6
    GRATUITOUS = "gratuitous"  # ARP with sender == target, or DAD NS from ::
    BAD_HOP_LIMIT = "bad_hop_limit"
    NO_SOURCE_LLADDR = "no_source_lladdr"
    NOT_OWNED = "not_owned"  # target address not in the map at all (Ethernet destination: OTHER_ETH_DST)
    WRONG_INTERFACE = "wrong_interface"  # owned, but on another interface
    LIVENESS_EXPIRED = "liveness_expired"  # a request this node would answer (ARP, NDP or heartbeat), too late
    # Appended, so the counter indices of the reasons above stay what they were (the C program's -D defines).
    HEARTBEAT = "heartbeat"  # a heartbeat request reflected: answered, but not an address request
    MALFORMED_HEARTBEAT = "malformed_heartbeat"  # UDP to the heartbeat port that is not a version-1 request/reply
    RATE_LIMITED = "rate_limited"  # a request this node would answer, over its source's flood limit (floodlimit.py)
    # Sent to another host's Ethernet address (a bridge flooding unknown unicast, a promiscuous NIC): an owned
    # target unicast to a MAC other than the one it is answered with, or a heartbeat not sent to the interface's MAC.
    OTHER_ETH_DST = "other_eth_dst"
    # Frames the RFCs say to ignore (docs/fastpath.md, Decision order): an NS whose ICMPv6 checksum does not verify
    # (RFC 4861 7.1.1); a request whose sender cannot be answered: a multicast Ethernet source (the reply would go
    # to a group), an ARP sender IP of 255.255.255.255, an IPv6 source that is multicast or ::1 (RFC 4291 2.5.3, 2.7).
    BAD_CHECKSUM = "bad_checksum"
    BAD_SOURCE = "bad_source"


# Verdicts that are not declines: stats() reports ANSWERED per address and HEARTBEAT as a total.
ANSWERING = frozenset({Verdict.ANSWERED, Verdict.HEARTBEAT})


@dataclass(frozen=True)
class AddressCounters:
    requests: int = 0
    replies: int = 0


@dataclass(frozen=True)
class ResponderStats:
    backend: str
    per_address: Mapping[OwnedKey, AddressCounters] = field(default_factory=dict)
    declined: Mapping[Verdict, int] = field(default_factory=dict)  # every Verdict but those in ANSWERING
    heartbeats: int = 0  # heartbeat requests reflected (Verdict.HEARTBEAT)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.per_address.values())

    @property
    def replies(self) -> int:
        return sum(c.replies for c in self.per_address.values())


class ResponderError(Exception):
    """A responder cannot load or run here; the message says why (used by the auto selector to fall back)."""


class KernelRefused(ResponderError):
    """A system call a responder made failed (socket, bind, send, netlink): every OSError a Responder method meets
    leaves it as this, with the call's errno (None when there was none)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    @classmethod
    def wrapping(cls, what: str, exc: OSError) -> KernelRefused:
        """'<what>: <the OSError>', keeping its errno; raise it `from exc`."""
        return cls(f"{what}: {exc}", exc.errno)


class Responder(Protocol):
    """What every backend (xdp.XdpResponder, ring.RingResponder, pyloop.PythonResponder) promises.

    Errors: every failure a method reports is a ResponderError: a system call that failed (an OSError) is a
    KernelRefused carrying its errno, interfaces that could not be served an ownership.InterfacesUnavailable
    naming each (the rest is applied), a bad table or port an ownership.OwnedTableError (also a ValueError,
    raised before anything changes). sync(), serve_heartbeats() and announce() after close() raise ResponderError.

    Threads: every method may be called from any thread. sync(), serve_heartbeats() and close() are serialised
    against each other; stats() and announce() see the owned table before or after a concurrent sync(), never a mix.

    Counters: stats().per_address holds exactly the keys owned now (zeros until asked): a withdrawn key leaves it
    (its metric series go with it) and a key owned again starts from zero. declined and heartbeats are totals over
    the responder's life and never go back."""

    backend: str

    def sync(self, owned: Owned) -> None:
        """Make the set of answered (address, interface) pairs exactly `owned`.

        Interface names resolve in the network namespace the responder was created in, whichever thread (in
        whichever namespace) calls; a bad key or MAC raises before anything changes."""

    def stats(self) -> ResponderStats:
        """The counters (see the class): a consistent snapshot, cheap enough for every metrics scrape."""

    def announce(self, address: IPAddress, interface: str) -> None:
        """Send the gratuitous burst (ARP) or unsolicited NA (IPv6) for an owned address, once. Every failure
        (an address not owned there, a closed responder, a send the kernel refused) is a ResponderError."""

    def set_liveness_deadline(self, deadline_ns: int | None) -> None:
        """Answer nothing (ARP, NDP, heartbeats) once CLOCK_MONOTONIC (time.monotonic_ns) passes deadline_ns;
        None = no deadline."""

    def serve_heartbeats(self, port: int, interfaces: Collection[str]) -> None:
        """Reflect heartbeat requests (heartbeat.py) to UDP `port` sent to the own MAC of one of `interfaces`,
        replacing the previous call's setting; port 0 or no interfaces = off. Those interfaces are served whether
        or not they own an address, until the next call; names resolve as sync()'s do, and an interface that
        cannot be served raises the ResponderError sync() would (the others are served)."""

    def close(self, keep_serving: bool = False) -> None:
        """Stop answering, release sockets and detach programs. Idempotent.

        keep_serving=True (a restart in place: the next process adopts what this one served): the xdp backend
        given a pin directory leaves its programs attached and its maps pinned, so the kernel keeps answering the
        last synced addresses until the last liveness deadline or until the next responder with the same pin
        directory takes over; without a pin directory it closes as with False. The ring and python backends
        answer from this process and cannot outlive it: they accept the flag and stop answering."""
