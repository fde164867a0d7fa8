"""The python backend: plain AF_PACKET sockets and packets.answer() — the reference, and the slowest.

One socket per interface (ETH_P_ALL, frames we send ourselves skipped), one thread polling them all. sync()
builds a new immutable snapshot (sockets + per-interface tables) and wakes the thread, which adopts it between
frames; sockets of interfaces no longer wanted are closed by the thread once it has stopped reading them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from metallb_fast.dataplane import floodlimit, ownership, packets
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
from metallb_fast.dataplane.floodlimit import FloodLimit, TokenBuckets
from metallb_fast.dataplane.heartbeat import Reflector
from metallb_fast.dataplane.netns import current_netns_fd, in_netns_fd
from metallb_fast.dataplane.syncing import SyncingResponder

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
ANCILLARY_SPACE = socket.CMSG_SPACE(AUXDATA.size)
RCVBUF = 4 << 20  # absorb bursts: Python drains slower than a flood arrives
POLL_MS = 200
BATCH = 64  # frames drained per readiness event before re-polling (fairness between interfaces)
# Frames that reached the lookup for an owned key: they count as requests for it (docs/fastpath.md, Counters)
_COUNTED = frozenset({Verdict.ANSWERED, Verdict.OTHER_ETH_DST, Verdict.LIVENESS_EXPIRED, Verdict.RATE_LIMITED})


@dataclass(frozen=True)
class Table:
    """What one interface answers (address -> MAC), what it declines as WRONG_INTERFACE, how it reflects heartbeats."""

    here: Mapping[IPAddress, bytes]
    elsewhere: frozenset[IPAddress]
    heartbeats: Reflector | None = None

    @classmethod
    def for_interface(cls, interface: str, owned: Owned, heartbeats: Reflector | None = None) -> Table:
        return cls(*ownership.split(owned, interface), heartbeats)


@dataclass(frozen=True)
class _Snapshot:
    sockets: Mapping[str, socket.socket]  # interface name -> bound socket
    indexes: Mapping[str, int]  # interface name -> the ifindex its socket is bound to
    tables: Mapping[str, Table]
    by_fd: Mapping[int, str] = field(default_factory=dict)


class PythonResponder(SyncingResponder):
    """Answers ARP/NDP from a Python thread; for reference and for machines without XDP or the Cython loop."""

    backend = "python"
    who = "python backend"

    def __init__(self, interfaces: Iterable[str] = (), *, flood_limit: FloodLimit | None = None) -> None:
        super().__init__(interfaces)  # its lock also serialises announce() against them
        # Only the loop thread charges the buckets; set_flood_limit swaps the limit they apply.
        self._buckets = TokenBuckets(flood_limit or FloodLimit.off())
        self._counters_lock = threading.Lock()
        self._netns = current_netns_fd()  # interface names resolve here whichever thread calls later
        self._per_address: dict[OwnedKey, AddressCounters] = {}
        self._declined: Counter[Verdict] = Counter()
        self._deadline_ns = -1
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._snapshot = _Snapshot({}, {}, {})
        self._retired: list[socket.socket] = []  # closed by the loop thread once it stops polling them
        self._retired_lock = threading.Lock()
        try:
            ownership.check_served(self.backend, self._apply({}))
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name="python-responder", daemon=True)
        self._thread.start()

    # --- Responder protocol -------------------------------------------------------------------------------

    def stats(self) -> ResponderStats:
        owned = self._owned  # read once: counts reported for this table only, whatever a concurrent sync() does
        with self._counters_lock:
            per_address = {key: counts for key, counts in self._per_address.items() if key in owned}
            declined = Counter(self._declined)
        return ownership.stats(self.backend, owned, per_address, declined)

    def announce(self, address: IPAddress, interface: str) -> None:
        with self._lock:
            frames = ownership.announcement(self._owned, address, interface, self.backend)
            sock = self._snapshot.sockets.get(interface)  # every owned interface has one until close()
            if sock is None:
                raise ResponderError(f"python backend: cannot announce {address} on {interface}: closed")
            try:
                for frame in frames:
                    sock.send(frame)
            except OSError as exc:
                raise KernelRefused.wrapping(f"python backend: announcing {address} on {interface}", exc) from exc

    def set_liveness_deadline(self, deadline_ns: int | None) -> None:
        self._deadline_ns = -1 if deadline_ns is None else max(0, int(deadline_ns))

    def set_flood_limit(self, limit: FloodLimit | None) -> None:
        """Change the per-source flood limit (None: off); the buckets are kept."""
        self._buckets.configure(limit or FloodLimit.off())

    @property
    def flood_limit(self) -> FloodLimit:
        return self._buckets.limit

    def close(self, keep_serving: bool = False) -> None:
        """Stop answering; keep_serving is accepted (base.Responder.close) but this thread dies with the process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake()
        self._thread.join(5.0)
        if self._thread.is_alive():  # never close sockets a running loop may still read
            log.error("python responder thread did not stop within 5 s; leaving its sockets open")
            return
        self._release()

    def __enter__(self) -> PythonResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------------

    def _apply(self, owned: Owned) -> dict[str, str]:
        """Build and publish the snapshot for `owned` on every interface that opens; {name: why} of the others."""
        port, beating = self._heartbeat  # served whether or not they own an address
        wanted = self._wanted(owned)
        current = self._snapshot
        with in_netns_fd(self._netns, "the responder's namespace"):
            moved = ownership.moved(current.indexes)
        kept = {name: sock for name, sock in current.sockets.items() if name not in moved}
        opened, failures = ownership.prepare([n for n in wanted if n not in kept], self._open)
        served = ownership.servable(owned, failures)
        sockets = {name: kept.get(name) or opened[name][0] for name in wanted if name not in failures}
        indexes = {name: current.indexes[name] if name in kept else opened[name][1] for name in sockets}
        with self._retired_lock:
            in_use = {id(sock) for sock in sockets.values()}
            self._retired += [sock for sock in current.sockets.values() if id(sock) not in in_use]
        reflecting = [name for name in beating if name in sockets]
        reflectors, unserved = ownership.prepare(reflecting, lambda name: self._reflector(name, port))
        failures.update(unserved)
        tables = {name: Table.for_interface(name, served, reflectors.get(name)) for name in sockets}
        self._owned = served
        by_fd = {sock.fileno(): name for name, sock in sockets.items()}
        self._snapshot = _Snapshot(sockets, indexes, tables, by_fd)
        self._forget_withdrawn(served)
        self._wake()
        return failures

    def _forget_withdrawn(self, served: Owned) -> None:
        """As in the other backends, a withdrawn address leaves stats() (its metric series with it) and one owned
        again starts from zero; a frame still decided with the previous table counts only for what is owned now."""
        with self._counters_lock:
            self._per_address = {key: counts for key, counts in self._per_address.items() if key in served}

    def _open(self, name: str) -> tuple[socket.socket, int]:
        with in_netns_fd(self._netns, "the responder's namespace"):
            ifindex = ownership.interface_index(name, self.backend)
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            except OSError as exc:
                raise KernelRefused.wrapping("python backend: cannot open an AF_PACKET socket", exc) from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)  # to see VLAN tags the kernel moved out of the frame
            sock.bind((name, ETH_P_ALL))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise KernelRefused.wrapping(f"python backend: cannot bind an AF_PACKET socket to {name}", exc) from exc
        return sock, ifindex

    def _reflector(self, name: str, port: int) -> Reflector:
        with in_netns_fd(self._netns, "the responder's namespace"):
            return Reflector(port, ownership.interface_mac(name, self.backend))

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\x00")

    def _alive(self) -> bool:
        deadline = self._deadline_ns
        return deadline < 0 or time.monotonic_ns() <= deadline

    def _run(self) -> None:
        poller = select.poll()
        registered: set[int] = set()
        poller.register(self._wake_r, select.POLLIN)
        adopted: _Snapshot | None = None
        while not self._stop.is_set():
            snapshot = self._snapshot
            if snapshot is not adopted:
                for fd in registered - snapshot.by_fd.keys():
                    poller.unregister(fd)
                for fd in snapshot.by_fd.keys() - registered:
                    poller.register(fd, select.POLLIN)
                registered = set(snapshot.by_fd)
                self._close_retired(snapshot)
                adopted = snapshot
            events = poller.poll(POLL_MS)
            if self._snapshot is not snapshot:
                continue  # decide with the tables in force now; frames wait in sockets still in use
            for fd, _ in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                name = snapshot.by_fd.get(fd)
                if name is not None:
                    self._drain(name, snapshot, snapshot.tables[name])

    def _drain(self, name: str, snapshot: _Snapshot, table: Table) -> None:
        sock = snapshot.sockets[name]
        for _ in range(BATCH):
            if self._snapshot is not snapshot:
                return  # swapped meanwhile: the next frames are decided with the new tables
            try:
                frame, ancillary, _, address = sock.recvmsg(65535, ANCILLARY_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("python responder: receiving on %s: %s", name, exc)
                return
            if address[2] == PACKET_OUTGOING:
                continue  # our own replies and announcements, seen by the ETH_P_ALL tap
            frame = _with_vlan_tag(frame, ancillary)
            result = packets.answer(frame, table.here, table.elsewhere, self._alive(), table.heartbeats)
            result = floodlimit.limit_answer(frame, result, self._buckets, time.monotonic_ns())
            if result.reply is not None:
                try:
                    sock.send(result.reply)
                except OSError as exc:
                    log.warning("python responder: replying on %s for %s: %s", name, result.target, exc)
            self._count(name, result)

    def _count(self, name: str, result: packets.Answer) -> None:
        with self._counters_lock:
            if result.verdict is not Verdict.ANSWERED:
                self._declined[result.verdict] += 1
            target = result.target  # None for heartbeats: they count in _declined (HEARTBEAT included), not here
            # _COUNTED verdicts come after a hit in this interface's table: the key was owned here when decided
            if result.verdict in _COUNTED and target is not None and (target, name) in self._owned:
                key = (target, name)
                seen = self._per_address.get(key, AddressCounters())
                answered = int(result.verdict is Verdict.ANSWERED)
                self._per_address[key] = AddressCounters(seen.requests + 1, seen.replies + answered)

    def _close_retired(self, adopted: _Snapshot | None) -> None:
        """Close retired sockets the loop no longer polls (a later sync may retire one the loop still uses)."""
        in_use = {id(sock) for sock in adopted.sockets.values()} if adopted else set()
        with self._retired_lock:
            done = [sock for sock in self._retired if id(sock) not in in_use]
            self._retired = [sock for sock in self._retired if id(sock) in in_use]
        for sock in done:
            sock.close()

    def _release(self) -> None:
        self._close_retired(None)
        for sock in self._snapshot.sockets.values():
            sock.close()
        self._snapshot = _Snapshot({}, {}, {})
        for fd in (self._wake_r, self._wake_w, self._netns):
            with contextlib.suppress(OSError):
                os.close(fd)


def _with_vlan_tag(frame: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """The frame as it was on the wire: the kernel strips an 802.1Q tag into metadata before packet sockets
    see it, while XDP sees it in place. Put it back so every backend decides on the same bytes (a tagged
    frame is NOT_ARP_OR_NDP)."""
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID and len(frame) >= 12:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame
