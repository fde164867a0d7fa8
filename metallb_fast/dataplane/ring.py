"""The ring backend: the Cython AF_PACKET loop (ext/ring.pyx) behind the Responder protocol.

One RingLoop (socket + TPACKET_V3 receive ring + table + counters + flood-limit buckets) per interface, each
answering in its own thread with the GIL released.
sync() builds one table per interface (owned here -> MAC, owned only elsewhere -> WRONG_INTERFACE) and swaps it
into the running loop; counters of a replaced table are folded into totals kept here for the addresses still
owned, so an address's counters never go back while it is owned, and leave stats() when it is withdrawn.
serve_heartbeats() opens loops on the interfaces it names (owned or not) and tells each loop its setting.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from types import ModuleType
from typing import Any

from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.base import (
    AddressCounters,
    IPAddress,
    KernelRefused,
    Owned,
    OwnedKey,
    ResponderError,
    ResponderStats,
    Verdict,
)
from metallb_fast.dataplane.floodlimit import FloodLimit
from metallb_fast.dataplane.netns import current_netns_fd, in_netns_fd
from metallb_fast.dataplane.syncing import SyncingResponder

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0  # the loop notices stop() within its 100 ms poll timeout
# Receive ring per interface (bytes): a flood arrives in bursts while the loop waits for the CPU it shares with
# the kernel's receive path; what does not fit is dropped by the kernel before we see it.
DEFAULT_RECEIVE_BUFFER = 4 << 20


def load_extension() -> ModuleType:
    """The compiled loop, or ResponderError saying how to get it."""
    try:
        from metallb_fast.dataplane import _ring
    except ImportError as exc:
        raise ResponderError(
            f"ring backend: the Cython extension metallb_fast.dataplane._ring is not built ({exc}); "
            "run `bash scripts/install.sh`"
        ) from exc
    return _ring


@dataclass(frozen=True)
class _Interface:
    name: str
    ifindex: int
    loop: Any  # _ring.RingLoop
    thread: threading.Thread


Entry = tuple[int, bytes, bytes | None]  # (family, packed address, MAC or None = owned only elsewhere)


def table_for(interface: str, owned: Owned) -> list[Entry]:
    """The lookup table of one interface: what it answers, and what it must call WRONG_INTERFACE."""
    here, elsewhere = ownership.split(owned, interface)
    entries: list[Entry] = [(address.version, address.packed, mac) for address, mac in here.items()]
    entries += [(address.version, address.packed, None) for address in elsewhere]
    return entries


class RingResponder(SyncingResponder):
    """Answers ARP/NDP from userspace with the Cython loop; for machines where XDP cannot run."""

    backend = "ring"
    who = "ring backend"

    def __init__(
        self,
        interfaces: Iterable[str] = (),
        *,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        flood_limit: FloodLimit | None = None,
    ) -> None:
        super().__init__(interfaces)
        self._ring = load_extension()
        self._receive_buffer = receive_buffer
        # Each loop keeps its own buckets: a source is limited per interface it sends on (the python backend and
        # the XDP map keep one table for all interfaces; a source floods one LAN).
        self._flood_limit = flood_limit or FloodLimit.off()
        self._netns = current_netns_fd()  # interface names resolve here whichever thread calls later
        self._interfaces: dict[str, _Interface] = {}
        self._deadline_ns = -1
        self._folded: dict[OwnedKey, AddressCounters] = {}
        self._folded_verdicts: Counter[Verdict] = Counter()
        try:
            for name in self._fixed:
                self._open(name)
        except ResponderError:
            self.close()
            raise

    # --- Responder protocol -------------------------------------------------------------------------------

    def _apply(self, owned: Owned) -> dict[str, str]:
        """Loops on exactly the interfaces wanted, each with its table and heartbeat setting; {name: why} of those
        that could not be opened (everything else is applied)."""
        port, beating = self._heartbeat  # served whether or not they own an address
        wanted = self._wanted(owned)
        with in_netns_fd(self._netns, "the responder's namespace"):
            moved = ownership.moved({name: i.ifindex for name, i in self._interfaces.items()})
        for name in moved:
            self._shut(name)
        _, failures = ownership.prepare([n for n in wanted if n not in self._interfaces], self._open)
        served = ownership.servable(owned, failures)
        for name, interface in self._interfaces.items():
            self._fold(name, interface.loop.replace_table(table_for(name, served)))
        for name in [n for n in self._interfaces if n not in wanted]:
            self._shut(name)
        _, unserved = ownership.prepare(list(self._interfaces), lambda name: self._reflect(name, port, beating))
        failures.update(unserved)
        self._owned = served
        # As the xdp backend, whose map entries go with the address: a withdrawn address leaves stats() (its metric
        # series with it), and one owned again starts from zero.
        self._folded = {key: counters for key, counters in self._folded.items() if key in served}
        return failures

    def _reflect(self, name: str, port: int, beating: Collection[str]) -> None:
        """Tell the loop on `name` to reflect heartbeats to `port` sent to the interface's MAC, if it is one of
        `beating`; else to reflect none."""
        interface = self._interfaces[name]
        port = port if name in beating else 0
        mac = None
        if port:
            with in_netns_fd(self._netns, "the responder's namespace"):
                mac = ownership.interface_mac(name, self.backend)
        try:
            interface.loop.set_heartbeats(port, mac)
        except OSError as exc:
            raise KernelRefused.wrapping(f"ring backend: cannot serve heartbeats on {name}", exc) from exc

    def stats(self) -> ResponderStats:
        with self._lock:
            per_address = dict(self._folded)
            verdicts = Counter(self._folded_verdicts)
            for name, interface in self._interfaces.items():
                live, counts, *_ = interface.loop.counters()
                _add(per_address, self._keyed(name, live))
                verdicts.update(self._verdicts(counts))
            owned = list(self._owned)
        return ownership.stats(self.backend, owned, per_address, verdicts)

    def announce(self, address: IPAddress, interface: str) -> None:
        with self._lock:
            frames = ownership.announcement(self._owned, address, interface, self.backend)
            running = self._interfaces.get(interface)  # every owned interface has one until close()
        if running is None:
            raise ResponderError(f"ring backend: cannot announce {address} on {interface}: closed")
        for frame in frames:
            try:
                running.loop.send(frame)
            except OSError as exc:
                raise KernelRefused.wrapping(f"ring backend: announcing {address} on {interface}", exc) from exc

    def set_liveness_deadline(self, deadline_ns: int | None) -> None:
        with self._lock:
            self._deadline_ns = -1 if deadline_ns is None else max(0, int(deadline_ns))
            for interface in self._interfaces.values():
                interface.loop.set_deadline(self._deadline_ns)

    def set_flood_limit(self, limit: FloodLimit | None) -> None:
        """Change the per-source flood limit (None: off); the buckets are kept."""
        with self._lock:
            self._flood_limit = limit or FloodLimit.off()
            for interface in self._interfaces.values():
                self._limit(interface.loop)

    @property
    def flood_limit(self) -> FloodLimit:
        return self._flood_limit

    def close(self, keep_serving: bool = False) -> None:
        """Stop answering; keep_serving is accepted (base.Responder.close) but a ring cannot outlive this process."""
        with self._lock:
            self._closed = True
            for name in list(self._interfaces):
                self._shut(name)
            if self._netns >= 0:
                os.close(self._netns)
                self._netns = -1

    def __enter__(self) -> RingResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------------

    def _open(self, name: str) -> None:
        # The socket is opened in the responder's namespace, so it stays bound there whoever calls sync() later.
        with in_netns_fd(self._netns, "the responder's namespace"):
            ifindex = ownership.interface_index(name, self.backend)
            try:
                loop = self._ring.RingLoop(ifindex, self._receive_buffer)
            except OSError as exc:
                raise KernelRefused.wrapping(f"ring backend: cannot open an AF_PACKET socket on {name}", exc) from exc
        loop.set_deadline(self._deadline_ns)
        self._limit(loop)
        thread = threading.Thread(target=_serve, args=(name, loop), name=f"ring-{name}", daemon=True)
        self._interfaces[name] = _Interface(name, ifindex, loop, thread)
        thread.start()

    def _limit(self, loop: Any) -> None:
        loop.set_flood_limit(self._flood_limit.interval_ns, self._flood_limit.tolerance_ns)

    def _shut(self, name: str) -> None:
        interface = self._interfaces.pop(name)
        interface.loop.stop()
        interface.thread.join(STOP_TIMEOUT_S)
        live, counts, refused, dropped = interface.loop.counters()
        self._fold(name, live)
        self._folded_verdicts.update(self._verdicts(counts))
        if refused or dropped:  # a flood beyond what this loop (or the device) could take: say how far beyond
            log.info(
                "ring loop on %s: %d replies refused by a full device queue, %d requests dropped by the kernel "
                "with the receive ring full",
                name,
                refused,
                dropped,
            )
        if interface.thread.is_alive():  # never free a socket a running loop still reads
            log.error("ring loop on %s did not stop within %.1f s; leaving its socket open", name, STOP_TIMEOUT_S)
            return
        interface.loop.close()

    def _fold(self, name: str, counters: list[tuple[int, bytes, int, int]]) -> None:
        _add(self._folded, self._keyed(name, counters))

    @staticmethod
    def _keyed(name: str, counters: list[tuple[int, bytes, int, int]]) -> dict[OwnedKey, AddressCounters]:
        return {
            (ip_address(packed), name): AddressCounters(requests, replies) for _, packed, requests, replies in counters
        }

    def _verdicts(self, counts: list[int]) -> Counter[Verdict]:
        return Counter({Verdict(name): count for name, count in zip(self._ring.VERDICTS, counts, strict=True)})


def _add(total: dict[OwnedKey, AddressCounters], more: dict[OwnedKey, AddressCounters]) -> None:
    for key, counters in more.items():
        seen = total.get(key, AddressCounters())
        total[key] = AddressCounters(seen.requests + counters.requests, seen.replies + counters.replies)


def _serve(name: str, loop: Any) -> None:
    err = loop.run()
    if err:
        log.error("ring loop on %s stopped: %s", name, OSError(err, "").strerror or err)
