"""What every backend does with the owned table around its own machinery: check it, list and resolve its interfaces,
split it per interface, apply what it can when some interfaces fail, announce an owned address, and report stats;
and the same for the heartbeat setting (serve_heartbeats). One definition, so the backends cannot drift.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import socket
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, TypeVar, overload

from metallb_fast.dataplane import base, heartbeat, packets

T = TypeVar("T")


class OwnedTableError(base.ResponderError, ValueError):
    """The owned table (or a request against it) is not valid. Both a ResponderError and a ValueError: the ring
    and python backends always raised the first, xdp the second, and callers of either keep working."""


def validate(owned: base.Owned, backend: str) -> None:
    """OwnedTableError naming the bad key or MAC, before anything is changed."""
    for key, mac in owned.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise OwnedTableError(f"{backend} backend: owned key {key!r} must be (address, interface name)")
        address, interface = key
        if not isinstance(address, IPv4Address | IPv6Address):
            raise OwnedTableError(f"{backend} backend: owned key {key!r}: address must be an IPv4Address/IPv6Address")
        if not isinstance(interface, str) or not interface:
            raise OwnedTableError(f"{backend} backend: owned key {key!r}: interface must be a non-empty name")
        if not isinstance(mac, bytes | bytearray) or len(mac) != 6:
            raise OwnedTableError(f"{backend} backend: MAC for {address} on {interface} must be 6 bytes, got {mac!r}")


def interfaces(owned: base.Owned, fixed: tuple[str, ...] = ()) -> list[str]:
    """The interfaces a backend listens on: those given at construction, then those in `owned`, each once."""
    return list(dict.fromkeys([*fixed, *(name for _, name in owned)]))


class InterfacesUnavailable(base.ResponderError):
    """sync() could not serve some interfaces (gone, or refusing the backend); everything else it applied.

    `failures` maps each such interface name to why. The speaker logs this and syncs again after re-reading links."""

    def __init__(self, backend: str, failures: Mapping[str, str]) -> None:
        self.failures = dict(sorted(failures.items()))
        reasons = "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        super().__init__(
            f"{backend} backend: not serving interface(s) {', '.join(self.failures)} (the rest of the owned table "
            f"is applied, withdrawals included): {reasons}"
        )


def prepare(names: Iterable[str], prepare_one: Callable[[str], T]) -> tuple[dict[str, T], dict[str, str]]:
    """Run prepare_one (open a socket, attach a program) for each interface, going on past failures:
    ({name: result} of those that worked, {name: why} of those that raised ResponderError)."""
    done: dict[str, T] = {}
    failures: dict[str, str] = {}
    for name in names:
        try:
            done[name] = prepare_one(name)
        except base.ResponderError as exc:
            failures[name] = str(exc)
    return done, failures


def servable(owned: base.Owned, failed: Collection[str]) -> dict[base.OwnedKey, bytes]:
    """`owned` without the entries on failed interfaces: what a backend applies at once, so one missing interface
    never holds back the withdrawal of an address elsewhere (two nodes would answer for it meanwhile)."""
    return {key: bytes(mac) for key, mac in owned.items() if key[1] not in failed}


def check_served(backend: str, failures: Mapping[str, str]) -> None:
    """After applying servable(): InterfacesUnavailable naming every interface that failed, if any did."""
    if failures:
        raise InterfacesUnavailable(backend, failures)


def split(owned: base.Owned, interface: str) -> tuple[dict[base.IPAddress, bytes], frozenset[base.IPAddress]]:
    """(answered here: address -> MAC, owned only on other interfaces: declined as WRONG_INTERFACE)."""
    here = {address: bytes(mac) for (address, name), mac in owned.items() if name == interface}
    return here, frozenset(address for address, name in owned if name != interface) - here.keys()


def announcement(owned: base.Owned, address: base.IPAddress, interface: str, backend: str) -> list[bytes]:
    """The frames announcing an owned address (MetalLB's gratuitous ARP pair, or one unsolicited NA)."""
    mac = owned.get((address, interface))
    if mac is None:
        raise OwnedTableError(
            f"{backend} backend: cannot announce {address} on {interface}: not owned there "
            "(not in the owned table; sync it first)"
        )
    if isinstance(address, IPv4Address):
        return packets.gratuitous_arp(address, mac)
    return [packets.unsolicited_na(address, mac)]


def stats(
    backend: str,
    owned: Iterable[base.OwnedKey],
    per_address: Mapping[base.OwnedKey, base.AddressCounters],
    verdicts: Mapping[base.Verdict, int],
) -> base.ResponderStats:
    """stats() as every backend reports it: each owned key present (zeros until asked), one declined count per
    reason other than ANSWERED and HEARTBEAT (zero when none), and the heartbeats reflected; keys no longer owned
    keep the counts they had."""
    counted = dict(per_address)
    for key in owned:
        counted.setdefault(key, base.AddressCounters())
    declined = {verdict: verdicts.get(verdict, 0) for verdict in base.Verdict if verdict not in base.ANSWERING}
    return base.ResponderStats(
        backend=backend, per_address=counted, declined=declined, heartbeats=verdicts.get(base.Verdict.HEARTBEAT, 0)
    )


def interface_index(name: str, backend: str) -> int:
    """The ifindex of interface `name` in this thread's network namespace, or ResponderError naming it.

    Backends call it inside the namespace they were created in (docs/fastpath.md, Interfaces and namespaces)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise missing_interface(name, backend) from None


def moved(opened: Mapping[str, int]) -> list[str]:
    """Names of opened interfaces ({name: ifindex when opened}) that are gone from this thread's network namespace
    or now name another link: what a backend bound to them serves no longer exists, so it reopens (or fails)."""
    gone = []
    for name, ifindex in opened.items():
        try:
            if socket.if_nametoindex(name) == ifindex:
                continue
        except OSError:
            pass
        gone.append(name)
    return gone


def missing_interface(name: str, backend: str) -> base.ResponderError:
    return base.ResponderError(f"{backend} backend: interface {name!r} does not exist in this network namespace")


def heartbeat_interfaces(port: int, interfaces: Collection[str], backend: str) -> tuple[int, tuple[str, ...]]:
    """serve_heartbeats' arguments checked: (port, interface names, each once), (0, ()) when off; OwnedTableError
    naming a bad port or name before anything changes."""
    try:
        heartbeat.check_port(port)
    except ValueError as exc:
        raise OwnedTableError(f"{backend} backend: {exc}") from None
    if isinstance(interfaces, str):
        raise OwnedTableError(f"{backend} backend: heartbeat interfaces {interfaces!r}: give a collection of names")
    names = tuple(dict.fromkeys(interfaces))
    for name in names:
        if not isinstance(name, str) or not name:
            raise OwnedTableError(f"{backend} backend: heartbeat interface {name!r} must be a non-empty name")
    if port == 0 or not names:
        return 0, ()
    return port, names


SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
IFNAMSIZ = 16
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772  # the link types whose hardware address is a 6-byte MAC


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    """An interface ioctl on `sock`: the kernel resolves `name` in the namespace the socket was opened in."""
    return fcntl.ioctl(sock.fileno(), request, name.encode()[: IFNAMSIZ - 1].ljust(IFNAMSIZ + 16, b"\0"))


@overload
def interface_mac(name: str, backend: str, sock: socket.socket | None = None) -> bytes: ...
@overload
def interface_mac(name: str, backend: str, sock: socket.socket | None, ethernet_only: Literal[True]) -> bytes | None:
    ...
def interface_mac(name: str, backend: str, sock: socket.socket | None = None, ethernet_only: bool = False
                  ) -> bytes | None:
    """The hardware address of interface `name` in this thread's network namespace (or in `sock`'s), or
    ResponderError naming it; with ethernet_only, None for a link whose address is no MAC (tun, wireguard, ipip).

    Read afresh on every call (serve_heartbeats, sync), so a changed address is picked up at the next one."""
    with contextlib.ExitStack() as stack:
        if sock is None:  # opened here: the ioctl asks this namespace
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        try:
            ifreq = _ifreq(sock, SIOCGIFHWADDR, name)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise missing_interface(name, backend) from None
            raise base.ResponderError(f"{backend} backend: cannot read the MAC address of {name!r}: {exc}") from None
    family = int.from_bytes(ifreq[IFNAMSIZ : IFNAMSIZ + 2], sys.byteorder)  # struct sockaddr: sa_family, address
    if ethernet_only and family not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return None
    return bytes(ifreq[IFNAMSIZ + 2 : IFNAMSIZ + 8])


def index_in(sock: socket.socket, name: str) -> int | None:
    """The ifindex of interface `name` in the namespace `sock` was opened in; None when there is none (a name too
    long for the kernel is none: truncated, it could name another link)."""
    if len(name.encode()) >= IFNAMSIZ:
        return None
    try:
        ifreq = _ifreq(sock, SIOCGIFINDEX, name)
    except OSError:
        return None
    return int.from_bytes(ifreq[IFNAMSIZ : IFNAMSIZ + 4], sys.byteorder)
