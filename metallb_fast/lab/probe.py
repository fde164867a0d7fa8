"""The client's view of a failover: which node answers the VIP, and which MACs answer ARP for it, every 10 ms.

    node namespaces  `python -m metallb_fast.lab.probe echo --node node0 --address VIP --port 9`
                     a UDP echo bound to the VIP (a local route on lo; arp_ignore=1 + arp_announce=2 keep the
                     kernel from ever answering or announcing the VIP, so ARP for it is answered by the speaker's
                     fast path alone): it answers "node0 <payload>", as kube-proxy would hand the packet to a
                     Pod on whichever node the client's packets reach.
    client namespace `python -m metallb_fast.lab.probe probe --address VIP --port 9 --out FILE`
                     every --interval (10 ms) slot k: a UDP datagram "k" to VIP:port through the client's own
                     stack (its ARP cache, as a real client), and an ARP request for the VIP from an AF_PACKET socket
                     with its own sender MAC and IP (so the answers never touch the client's ARP cache); every
                     answer is recorded with its arrival time, so two MACs answering one sample are both seen.

Records are JSON lines (compact arrays) with CLOCK_MONOTONIC times, the clock every namespace shares, so a
driver's fault times (time.monotonic()) compare directly:

    ["t", k, t]            slot k sent (UDP seq k and ARP sample k)
    ["r", k, t, node]      UDP answer to seq k from `node`
    ["m", t, mac]          ARP reply to our request (sender hardware address `mac`)
    ["g", t, mac]          gratuitous ARP for the VIP (sender IP = target IP = VIP)
    ["e", k, t, errno]     the UDP send failed (e.g. EHOSTUNREACH once the client's ARP entry failed)

`analyse()` turns a window of records into the figures of one trial (pure; unit-testable).
Both workers exit by themselves: on SIGTERM, when their parent dies (PR_SET_PDEATHSIG), or after --lifetime.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import ctypes
import ctypes.util
import itertools
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

ETH_P_ARP = 0x0806
PROBE_INTERVAL_S = 0.01
ECHO_PORT = 9  # the discard/echo port; any port works, the VIP is ours alone in the lab
# The ARP sampler's identity on the lab LAN: clear of nodes (.10+), clients (.100+), VIPs (.200+) and the ARP flood's
# senders (.32-.95); a locally administered MAC no lab host has.
SAMPLER_HOST = 98
SAMPLER_MAC = bytes((0x02, 0x6D, 0x6C, 0xFE, 0x00, 0x01))
DEFAULT_LIFETIME_S = 4 * 3600.0
PR_SET_PDEATHSIG = 1
FLUSH_EVERY_S = 0.05


# ---------------------------------------------------------------------------------------------------- workers

def die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies (a crashed driver leaves nothing running)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent or parent == 1:  # the parent died before prctl took effect
        os._exit(1)


class _Stop:
    def __init__(self) -> None:
        self.requested = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._set)

    def _set(self, signum: int, frame: object) -> None:
        self.requested = True


def run_echo(node: str, addresses: Sequence[str], port: int, lifetime: float) -> int:
    """Answer every datagram to address:port with "<node> <payload>", from that address."""
    stop = _Stop()
    sockets = []
    for address in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))  # the VIP is local (a route on lo), so the reply leaves from it
        sock.setblocking(False)
        sockets.append(sock)
    prefix = node.encode() + b" "
    print("ready", flush=True)
    deadline = time.monotonic() + lifetime
    while not stop.requested and time.monotonic() < deadline:
        try:
            readable, _, _ = select.select(sockets, [], [], 0.5)
        except InterruptedError:
            continue
        for sock in readable:
            while True:
                try:
                    data, peer = sock.recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    break
                # OSError: the client's address is unresolvable for now (link down); the client sees the loss
                with contextlib.suppress(OSError):
                    sock.sendto(prefix + data, peer)
    return 0


def _arp_answer(frame: bytes, address: bytes, sampler_ip: bytes) -> tuple[str, str] | None:
    """("m", mac) for a reply to the sampler, ("g", mac) for a gratuitous ARP for `address`, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    if spa != address:
        return None
    mac = sha.hex(":")
    if op == 2 and tpa == sampler_ip:
        return "m", mac
    if tpa == address:
        return "g", mac
    return None


def run_probe(address: str, port: int, interface: str, interval: float, out: Path, lifetime: float,
              sampler_ip: str) -> int:
    """Every `interval`: a UDP probe and an ARP request for `address`; every answer appended to `out`."""
    from metallb_fast.dataplane import packets

    stop = _Stop()
    vip, sampler = IPv4Address(address), IPv4Address(sampler_ip)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    udp.setblocking(False)
    arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    arp.bind((interface, ETH_P_ARP))
    arp.setblocking(False)
    request = packets.arp_request(SAMPLER_MAC, sampler, vip)
    handle = out.open("a", buffering=1 << 16)
    write = handle.write
    print("ready", flush=True)
    start = time.monotonic()
    deadline = start + lifetime
    k = 0
    flushed = start
    while not stop.requested:
        now = time.monotonic()
        if now >= deadline:
            break
        due = start + k * interval
        if now >= due:
            if now - due > interval:  # this process was not scheduled for a while: no catching up, skip slots
                k = int((now - start) / interval)
            try:
                udp.sendto(str(k).encode(), (address, port))
            except OSError as error:
                write(json.dumps(["e", k, now, error.errno]) + "\n")
            with contextlib.suppress(OSError):
                arp.send(request)
            write(f'["t",{k},{now!r}]\n')
            k += 1
        timeout = max(0.0, start + k * interval - time.monotonic())
        try:
            readable, _, _ = select.select([udp, arp], [], [], timeout)
        except InterruptedError:
            continue
        if udp in readable:
            while True:
                try:
                    data = udp.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP errors surface here (ECONNREFUSED on an unconnected socket is rare)
                    break
                t = time.monotonic()
                node, _, seq = data.decode(errors="replace").partition(" ")
                if seq.isdigit():
                    write(json.dumps(["r", int(seq), t, node]) + "\n")
        if arp in readable:
            while True:
                try:
                    frame = arp.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                found = _arp_answer(frame, vip.packed, sampler.packed)
                if found is not None:
                    write(json.dumps([found[0], time.monotonic(), found[1]]) + "\n")
        if time.monotonic() - flushed >= FLUSH_EVERY_S:
            handle.flush()
            flushed = time.monotonic()
    handle.close()
    return 0


# ---------------------------------------------------------------------------------------------------- driver side

def read_ready(proc: subprocess.Popen[str], timeout: float) -> bool:
    """Whether `proc` printed a "ready" line on stdout within `timeout` (False as soon as stdout closes)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.strip() == "ready":
                    return True
                if line == "":
                    break
    return False


def wait_ready(proc: subprocess.Popen[str], what: str, timeout: float = 30.0) -> None:
    """Wait for the "ready" line a lab helper prints once it serves; RuntimeError with its stderr otherwise."""
    if read_ready(proc, timeout):
        return
    terminate(proc)
    err = proc.stderr.read() if proc.stderr is not None else ""
    raise RuntimeError(f"{what} did not start (exit {proc.returncode}): {err.strip()[-500:]}")


def terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a helper this process started (by pid), SIGKILL after 5 s; waits for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------- records

@dataclass
class ProbeRecords:
    """Everything one probe recorded (or a time window of it), in arrival order."""

    interval: float = PROBE_INTERVAL_S
    sent: list[tuple[int, float]] = field(default_factory=list)  # (seq, t)
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # (t, seq, node)
    arp: list[tuple[float, str]] = field(default_factory=list)  # (t, mac) replies to the sampler
    gratuitous: list[tuple[float, str]] = field(default_factory=list)  # (t, mac)
    errors: list[tuple[float, int, int]] = field(default_factory=list)  # (t, seq, errno)

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            kind = record[0]
            if kind == "t":
                self.sent.append((record[1], record[2]))
            elif kind == "r":
                self.answers.append((record[2], record[1], record[3]))
            elif kind == "m":
                self.arp.append((record[1], record[2]))
            elif kind == "g":
                self.gratuitous.append((record[1], record[2]))
            elif kind == "e":
                self.errors.append((record[2], record[1], record[3]))

    def window(self, start: float, end: float) -> ProbeRecords:
        """The records whose time lies in [start, end]."""
        return ProbeRecords(
            self.interval,
            [s for s in self.sent if start <= s[1] <= end],
            [a for a in self.answers if start <= a[0] <= end],
            [a for a in self.arp if start <= a[0] <= end],
            [g for g in self.gratuitous if start <= g[0] <= end],
            [e for e in self.errors if start <= e[0] <= end],
        )

    def arp_samples(self) -> list[tuple[float, frozenset[str]]]:
        """(t, MACs) per ARP sample: each reply belongs to the latest sample sent before it arrived."""
        samples: list[tuple[float, set[str]]] = [(t, set()) for _, t in sorted(self.sent, key=lambda s: s[1])]
        times = [t for t, _ in samples]
        for t, mac in self.arp:
            index = bisect.bisect_right(times, t) - 1
            if index >= 0:
                samples[index][1].add(mac)
        return [(t, frozenset(macs)) for t, macs in samples]


class ProbeLog:
    """Reads a probe's growing output file incrementally; `records` holds everything read so far."""

    def __init__(self, path: Path, interval: float = PROBE_INTERVAL_S) -> None:
        self.path = path
        self.records = ProbeRecords(interval)
        self._offset = 0
        self._partial = ""

    def poll(self) -> ProbeRecords:
        if self.path.exists():
            with self.path.open() as handle:
                handle.seek(self._offset)
                chunk = handle.read()
                self._offset = handle.tell()
            text = self._partial + chunk
            lines = text.split("\n")
            self._partial = lines.pop()
            self.records.add_lines(lines)
        return self.records


# ---------------------------------------------------------------------------------------------------- analysis

@dataclass(frozen=True)
class Move:
    at: float  # arrival of the new node's answer to the first probe it answered
    source: str | None
    target: str


@dataclass(frozen=True)
class TrialFigures:
    """What the client saw around one fault (times in seconds; `fault_at` = 0 for the *_s relative figures)."""

    owner_before: str | None  # the node answering just before the fault
    owner_after: str | None  # the node answering at the end of the window
    moves: tuple[Move, ...]  # every change of the answering node after the fault
    move_s: float | None  # fault -> first answer from another node (None: no move)
    outage_s: float  # last answer from the old node -> first from the new one; without a move, the longest gap
    longest_gap_s: float  # the longest time without any answer, from the last answer before the fault
    unrecovered: bool  # no answer at all after the longest gap began, up to the window's end
    overlap_max_s: float  # the longest run of ARP samples answered by two or more MACs
    overlap_total_s: float
    arp_silent_max_s: float  # the longest run of ARP samples nobody answered
    sent: int
    answered: int
    macs_seen: tuple[str, ...]

    def relative_moves(self, fault_at: float) -> list[dict[str, object]]:
        return [{"at_s": round(m.at - fault_at, 4), "from": m.source, "to": m.target} for m in self.moves]


def _runs(
    samples: Sequence[tuple[float, frozenset[str]]], interval: float, hit: Callable[[frozenset[str]], bool]
) -> tuple[float, float]:
    """(longest, total) duration of consecutive samples for which hit(macs) holds; a run of n samples lasts from
    its first sample to the one after its last (n * interval when nothing was skipped)."""
    longest = total = 0.0
    start: float | None = None
    for i, (t, macs) in enumerate(samples):
        if hit(macs):
            if start is None:
                start = t
            end = samples[i + 1][0] if i + 1 < len(samples) else t + interval
            longest = max(longest, end - start)
        elif start is not None:
            total += t - start
            start = None
    if start is not None:
        total += samples[-1][0] + interval - start
    return longest, total


def analyse(records: ProbeRecords, fault_at: float, end: float, baseline_s: float = 1.0) -> TrialFigures:
    """The figures of one trial: `records` must cover [fault_at - baseline_s, end]."""
    before = [a for a in records.answers if fault_at - baseline_s <= a[0] < fault_at]
    after = sorted(a for a in records.answers if fault_at <= a[0] <= end)
    owner_before = max(before)[2] if before else None
    # Moves in the order the probes were sent: over a delayed path the old node's answers to earlier probes may
    # still arrive after the new node's first ones, which is reordering, not a move.
    moves: list[Move] = []
    current = owner_before
    for t, _, node in sorted(after, key=lambda a: (a[1], a[0])):
        if node != current:
            moves.append(Move(t, current, node))
            current = node
    owner_after = current if after else None
    # Gaps between consecutive answers, starting at the last answer before the fault.
    times = ([max(before)[0]] if before else [fault_at]) + [t for t, _, _ in after]
    longest_gap, unrecovered = 0.0, False
    for a, b in itertools.pairwise(times):
        longest_gap = max(longest_gap, b - a)
    if end - times[-1] > longest_gap:
        longest_gap, unrecovered = end - times[-1], True
    if moves and moves[0].source is not None:
        first = moves[0]
        last_old = max((t for t, _, node in records.answers if node == first.source and t < first.at), default=None)
        outage = first.at - last_old if last_old is not None else first.at - fault_at
    else:
        outage = longest_gap
    samples = records.window(fault_at, end).arp_samples()
    overlap_max, overlap_total = _runs(samples, records.interval, lambda macs: len(macs) >= 2)
    silent_max, _ = _runs(samples, records.interval, lambda macs: not macs)
    window = records.window(fault_at, end)
    return TrialFigures(
        owner_before=owner_before,
        owner_after=owner_after,
        moves=tuple(moves),
        move_s=moves[0].at - fault_at if moves else None,
        outage_s=outage,
        longest_gap_s=longest_gap,
        unrecovered=unrecovered,
        overlap_max_s=overlap_max,
        overlap_total_s=overlap_total,
        arp_silent_max_s=silent_max,
        sent=len(window.sent),
        answered=len({seq for _, seq, _ in window.answers} & {seq for seq, _ in window.sent}),
        macs_seen=tuple(sorted({mac for _, mac in window.arp})),
    )


def steady_owner(records: ProbeRecords, now: float, span_s: float, mac_of: dict[str, str]) -> str | None:
    """The node that alone answered every UDP probe and every ARP sample of the last `span_s` (its MAC only), or
    None. Probes sent in the last 50 ms are not yet expected back."""
    window = records.window(now - span_s, now)
    sent = [seq for seq, t in window.sent if t <= now - 0.05]
    if len(sent) < 0.8 * span_s / records.interval:
        return None
    answered = {seq: node for _, seq, node in window.answers}
    nodes = {answered.get(seq) for seq in sent}
    if len(nodes) != 1 or None in nodes:
        return None
    (node,) = nodes
    assert node is not None
    samples = [macs for t, macs in window.arp_samples() if t <= now - 0.05]
    if not samples or any(macs != {mac_of.get(node)} for macs in samples):
        return None
    return node


# ---------------------------------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    echo = sub.add_parser("echo", help="node side: answer UDP to the VIP with this node's name")
    echo.add_argument("--node", required=True)
    echo.add_argument("--address", action="append", required=True)
    echo.add_argument("--port", type=int, default=ECHO_PORT)
    echo.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME_S)
    probe = sub.add_parser("probe", help="client side: probe the VIP (UDP + ARP) every interval")
    probe.add_argument("--address", required=True)
    probe.add_argument("--port", type=int, default=ECHO_PORT)
    probe.add_argument("--interface", default="eth0")
    probe.add_argument("--interval", type=float, default=PROBE_INTERVAL_S)
    probe.add_argument("--sampler-ip", required=True, help="sender IP of the ARP samples (an unused LAN address)")
    probe.add_argument("--out", type=Path, required=True)
    probe.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME_S)
    args = parser.parse_args(argv)
    die_with_parent()
    try:
        if args.role == "echo":
            return run_echo(args.node, args.address, args.port, args.lifetime)
        return run_probe(args.address, args.port, args.interface, args.interval, args.out, args.lifetime,
                         args.sampler_ip)
    except OSError as error:
        print(f"probe {args.role}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
