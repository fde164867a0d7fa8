"""The flood bench's legitimate client: ARP who-has the VIP from the client's own MAC and address, one request at a
time, timed with CLOCK_MONOTONIC around an AF_PACKET send and receive.

It runs as a thread of the send worker, on the sender's core at real-time priority (a client on a real network has
its own CPUs; here it must not queue behind the flooder), while the flood runs GIL-free in the main thread. The
client's XDP sink passes frames to the client's own MAC, so only these replies reach the socket.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address

from metallb_fast.dataplane import packets
from metallb_fast.lab.probe import _arp_answer

ETH_P_ARP = 0x0806
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # the flood leaves through this interface too: the socket must not see it
PRIORITY = 20  # SCHED_FIFO, above the client's NAPI thread (10): a reply read late would inflate the RTT


@dataclass(frozen=True)
class ProbeSpec:
    interface: str
    mac: bytes
    ip: IPv4Address
    vip: IPv4Address
    interval_s: float  # one request per interval; a reply later than that counts as lost
    cpu: int


class Prober(threading.Thread):
    """Once `flooding` is set, one request per interval for duration_s; then rtts holds one round trip per
    request in seconds (None: no reply within the interval) and refused the requests that could not be sent."""

    def __init__(self, spec: ProbeSpec, flooding: threading.Event, duration_s: float) -> None:
        super().__init__(name="legitimate-client", daemon=True)
        self.spec, self.flooding, self.duration_s = spec, flooding, duration_s
        self.rtts: list[float | None] = []
        self.refused = 0
        self.failure: str | None = None
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self._sock.bind((spec.interface, ETH_P_ARP))
        self._sock.setblocking(False)

    def run(self) -> None:
        try:
            os.sched_setaffinity(0, {self.spec.cpu})  # pid 0 = this thread (Linux: affinity is per thread)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
            self._probe()
        except Exception as exc:  # reported in the worker's JSON instead of a thread traceback nobody reads
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._sock.close()

    def _probe(self) -> None:
        spec = self.spec
        request = packets.arp_request(spec.mac, spec.ip, spec.vip)
        vip, own = spec.vip.packed, spec.ip.packed
        self.flooding.wait()
        start = time.monotonic()
        end = start + self.duration_s - spec.interval_s  # the last request still has its interval to be answered
        k = 0
        while (due := start + k * spec.interval_s) < end:
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            k += 1
            self._drain()  # a reply that came after its interval belongs to no request
            sent_at = time.monotonic()
            try:
                self._sock.send(request)
            except OSError:  # ENOBUFS: the node's receive ring is full and the veth pushed back
                self.refused += 1
                self.rtts.append(None)
                continue
            self.rtts.append(self._await_reply(sent_at, sent_at + spec.interval_s, vip, own))

    def _await_reply(self, sent_at: float, deadline: float, vip: bytes, own: bytes) -> float | None:
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._sock], [], [], left)
            if not readable:
                return None
            while True:
                try:
                    frame = self._sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                if (_arp_answer(frame, vip, own) or ("", ""))[0] == "m":
                    return time.monotonic() - sent_at
        return None

    def _drain(self) -> None:
        while True:
            try:
                self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
