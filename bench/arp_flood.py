"""ARP flood: every responder backend and the kernel's own ARP, side by side, in one run.

Topology: metallb_fast.lab.Lab(nodes=1, clients=1, direct=True), one veth pair between a client namespace and a
node namespace. For each scenario the client floods ARP requests for the VIP at C speed (metallb_fast.testing._flood:
prebuilt frames cycling over 64 source MACs/IPs, sendmmsg in a GIL-free loop) while the responder under test runs
in the node namespace; replies are counted on the client side (rx_packets of the client's veth).

Scenarios: sender-only (no responder: what the sender reaches), xdp-native (with an XDP_PASS program on the client's
veth so that XDP_TX is delivered), xdp-generic, ring (Cython), python, kernel (the VIP on the node's interface).
The sender is pinned to one core and the responder to the other; each veth's receive path runs in a threaded-NAPI
kernel thread pinned to its side's core (node: responder core; client: sender core), so the kernel's own ARP, XDP
and AF_PACKET delivery all run on the responder core rather than on whichever core transmitted.

    python bench/arp_flood.py [--duration 5] [--quick] [--scenarios ring,kernel] [--json bench/results/...]

Internally the script re-runs itself inside the namespaces (--role send / --role serve).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from metallb_fast.dataplane import packets  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "arp_flood.json"
SCENARIOS = ("sender-only", "xdp-native", "xdp-generic", "ring", "python", "kernel")
QUICK_SCENARIOS = SCENARIOS
SOURCES = 64  # distinct client MAC/IP pairs the flood cycles over
SOURCE_BASE = 32  # 192.0.2.32 .. 192.0.2.95: on the lab LAN, clear of nodes (.10+), clients (.100+), VIPs (.200+)
DRAIN_S = 0.5  # after the flood, replies still in flight are counted
READY_TIMEOUT_S = 60.0
COUNTERS = ("rx_packets", "tx_packets", "rx_dropped", "tx_dropped")
TARGETS = "XDP >= 1.5x kernel replies/s and >= 5x python with >= 99 % answered; ring (Cython) >= 2x python"


# ------------------------------------------------------------------------------------------------ workers

def flood_frames(vip: IPv4Address, subnet_base: IPv4Address) -> list[bytes]:
    """ARP who-has VIP from SOURCES different (MAC, IP) senders on the lab LAN."""
    frames = []
    for i in range(SOURCES):
        mac = bytes((0x02, 0x66, 0x6C, 0x00, 0x00, i))
        frames.append(packets.arp_request(mac, subnet_base + SOURCE_BASE + i, vip))
    return frames


def _counters(interface: str) -> dict[str, int]:
    """The interface's counters as this namespace's sysfs shows them (`ip netns exec` remounts /sys)."""
    base = Path("/sys/class/net") / interface / "statistics"
    return {name: int((base / name).read_text()) for name in COUNTERS}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


def role_send(args: argparse.Namespace) -> int:
    """In the client namespace: flood, wait for stragglers, print one JSON line."""
    from metallb_fast.testing import _flood

    os.sched_setaffinity(0, {args.cpu})
    vip = IPv4Address(args.vip)
    frames = flood_frames(vip, IPv4Address(args.subnet_base))
    before = _counters(args.interface)
    ifindex = socket.if_nametoindex(args.interface)
    if args.sender == "live":
        result = _flood.flood_live(ifindex, frames, args.duration, args.rate)
    else:
        result = _flood.flood(ifindex, frames, args.duration, 64, args.rate)
    time.sleep(DRAIN_S)
    result["client"] = _delta(_counters(args.interface), before)
    print(json.dumps(result), flush=True)
    return 0


XDP_FLAGS_DRV_MODE = 1 << 2


def role_sink(args: argparse.Namespace) -> int:
    """In the client namespace: attach the counting sink (native `return XDP_DROP`) to the client's veth.

    Native XDP on the client is what makes the node's XDP_TX deliverable on veth; dropping in XDP (rather than
    passing replies up the client's stack) keeps the client's share of the CPU small and equal in every scenario.
    The attachment outlives this process and disappears with the lab's veth.
    """
    from pyroute2 import IPRoute

    from metallb_fast.testing import _flood

    fd = -1 if args.detach else _flood.load_xdp_drop()
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=args.interface)[0]
            ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]})
    finally:
        if fd >= 0:
            os.close(fd)
    return 0


def _open_backend(backend: str, interface: str) -> Any:
    if backend in ("xdp-native", "xdp-generic"):
        from metallb_fast.dataplane.xdp import XdpResponder

        return XdpResponder([interface], mode=backend.split("-")[1])
    if backend == "ring":
        from metallb_fast.dataplane.ring import RingResponder

        return RingResponder([interface])
    if backend == "python":
        from metallb_fast.dataplane.backends import open_responder

        return open_responder("python", [interface])
    raise ValueError(f"--backend {backend!r}: not a responder backend")


def role_serve(args: argparse.Namespace) -> int:
    """In the node namespace: answer for the VIP until SIGTERM, then print the responder's counters as JSON."""
    os.sched_setaffinity(0, {args.cpu})  # before the responder starts its threads: they inherit it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    responder = _open_backend(args.backend, args.interface)
    try:
        responder.sync({(IPv4Address(args.vip), args.interface): packets.parse_mac(args.mac)})
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        stats = responder.stats()
    finally:
        responder.close()
    print(json.dumps({
        "backend": stats.backend,
        "requests": stats.requests,
        "replies": stats.replies,
        "declined": {verdict.value: count for verdict, count in stats.declined.items() if count},
    }), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ driver

@dataclass(frozen=True)
class Result:
    scenario: str
    sent: int
    pushbacks: int  # sendmmsg calls the veth refused (receiver ring full): how often the node pushed back
    elapsed_s: float
    replies: int  # counted on the client's veth
    delivered: int  # requests that reached the node's veth
    responder: dict[str, Any] | None  # the responder's own counters
    error: str | None = None

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def replies_per_s(self) -> float:
        return self.replies / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def answered(self) -> float:
        return self.replies / self.sent if self.sent else 0.0


def _read_node_counters(lab: Any, netns: str, interface: str) -> dict[str, int]:
    out = lab.run(netns, ["cat", *(f"/sys/class/net/{interface}/statistics/{name}" for name in COUNTERS)])
    return dict(zip(COUNTERS, map(int, out.stdout.split()), strict=True))


@contextmanager
def _responder(lab: Any, netns: str, backend: str, interface: str, vip: IPv4Address, mac: bytes,
               cpu: int) -> Iterator[Callable[[], dict[str, Any]]]:
    """Start a serve worker; yields a function that stops it and returns its counters."""
    proc = lab.popen(netns, [sys.executable, __file__, "--role", "serve", "--backend", backend, "--interface",
                             interface, "--vip", str(vip), "--mac", packets.format_mac(mac), "--cpu", str(cpu)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped: dict[str, Any] = {}

    def stop() -> dict[str, Any]:
        if "result" not in stopped:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            lines = [line for line in out.splitlines() if line.startswith("{")]
            stopped["result"] = json.loads(lines[-1]) if lines else {"error": err.strip()[-500:]}
        return stopped["result"]

    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == "ready" or not line:
                break
        if line.strip() != "ready":
            raise RuntimeError(f"{backend} responder did not start: {stop().get('error', line)}")
        yield stop
    finally:
        stop()


@contextmanager
def _scenario_setup(lab: Any, scenario: str, node_ns: str, interface: str, vip: IPv4Address,
                    mac: bytes, cpu: int) -> Iterator[Callable[[], dict[str, Any] | None]]:
    if scenario == "sender-only":
        # The node drops everything in XDP: what is measured is the sender (and the veth), not the node's stack.
        sink = [sys.executable, __file__, "--role", "sink", "--interface", interface]
        lab.run(node_ns, sink)
        try:
            yield lambda: None
        finally:
            lab.run(node_ns, [*sink, "--detach"], check=False)
    elif scenario == "kernel":
        lab.run(node_ns, ["ip", "addr", "add", f"{vip}/32", "dev", interface])
        try:
            yield lambda: None
        finally:
            lab.run(node_ns, ["ip", "addr", "del", f"{vip}/32", "dev", interface], check=False)
    else:
        with _responder(lab, node_ns, scenario, interface, vip, mac, cpu) as stop:
            yield stop


def run_scenario(lab: Any, scenario: str, args: argparse.Namespace) -> Result:
    node, client = lab.nodes[0], lab.clients[0]
    interface = node.interfaces[0]
    client_if = client.interfaces[0]
    vip = lab.vip_v4(0)
    mac = node.mac(interface)
    with _scenario_setup(lab, scenario, node.netns, interface, vip, mac, args.responder_cpu) as stop:
        node_before = _read_node_counters(lab, node.netns, interface)
        sent = lab.run(client.netns, [
            sys.executable, __file__, "--role", "send", "--interface", client_if, "--vip", str(vip),
            "--subnet-base", str(client.endpoint(client_if).ipv4.network.network_address),
            "--duration", str(args.duration), "--rate", str(args.rate), "--cpu", str(args.sender_cpu),
            "--sender", args.sender,
        ], timeout=args.duration + 60)
        node_after = _read_node_counters(lab, node.netns, interface)
        responder = stop()
    flood = json.loads(sent.stdout.strip().splitlines()[-1])
    return Result(
        scenario=scenario, sent=flood["sent"], pushbacks=flood["pushbacks"], elapsed_s=flood["elapsed_s"],
        replies=flood["client"]["rx_packets"], delivered=node_after["rx_packets"] - node_before["rx_packets"],
        responder=responder,
    )


def _napi_threads(interface: str) -> set[int]:
    """pids of threaded-NAPI kernel threads for interfaces called `interface` (in any namespace)."""
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with suppress(OSError):
            if comm.read_text().startswith(f"napi/{interface}-"):
                pids.add(int(comm.parent.name))
    return pids


def _pin_receive_path(lab: Any, netns: str, interface: str, cpu: int, realtime: bool = False) -> list[int]:
    """Run this interface's receive processing in its own NAPI kernel thread, pinned to `cpu`.

    On veth, GRO turns NAPI on (and TSO off on the sender lets plain skbs use it), and `threaded` moves the
    poll out of softirq context, which would otherwise run on whichever core transmitted: the sender's. So the
    node's whole receive path (XDP, kernel ARP, AF_PACKET delivery) runs on the responder core, and the client's
    reply counting on the sender core (realtime: it preempts the sender).
    Returns the pinned thread ids (empty: not possible here, see JSON).
    """
    lab.run(netns, ["ethtool", "-K", interface, "gro", "on", "tso", "off"], check=False)
    before = _napi_threads(interface)
    lab.run(netns, ["sh", "-c", f"echo 1 > /sys/class/net/{interface}/threaded"], check=False)
    pinned = sorted(_napi_threads(interface) - before)
    for pid in pinned:
        os.sched_setaffinity(pid, {cpu})
        if realtime:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
    return pinned


def format_table(results: Sequence[Result]) -> str:
    by_name = {r.scenario: r for r in results if r.error is None}
    kernel = by_name.get("kernel")
    python = by_name.get("python")
    header = (f"{'scenario':<12} {'sent/s':>11} {'replies/s':>11} {'answered':>9} {'x kernel':>9} {'x python':>9}"
              f" {'node replies':>13}")
    lines = [header, "-" * len(header)]
    for r in results:
        if r.error is not None:
            lines.append(f"{r.scenario:<12} error: {r.error}")
            continue
        vs_kernel = f"{r.replies_per_s / kernel.replies_per_s:.2f}" if kernel and kernel.replies else "-"
        vs_python = f"{r.replies_per_s / python.replies_per_s:.2f}" if python and python.replies else "-"
        if r.scenario == "sender-only":
            vs_kernel = vs_python = "-"
        own = (r.responder or {}).get("replies")
        lines.append(f"{r.scenario:<12} {r.sent_per_s:>11,.0f} {r.replies_per_s:>11,.0f} "
                     f"{100 * r.answered:>8.1f}% {vs_kernel:>9} {vs_python:>9} {own if own is not None else '-':>13}")
    return "\n".join(lines)


def _out_of_time(signum: int, frame: object) -> None:
    raise TimeoutError("arp_flood: the run exceeded its time budget (a worker or the lab hung)")


def drive(args: argparse.Namespace) -> int:
    from metallb_fast.lab import Lab

    if os.geteuid() != 0:
        print("arp_flood: needs root (network namespaces, XDP)", file=sys.stderr)
        return 2
    if os.cpu_count() is not None and os.cpu_count() < 2:  # type: ignore[operator]
        print("arp_flood: warning: one CPU, sender and responder share it", file=sys.stderr)
    results: list[Result] = []
    # A hard bound on the whole run: the alarm raises in the main thread, so the lab is still torn down.
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(len(args.scenarios) * (args.duration + 60) + 120))
    load_before = os.getloadavg()  # other work on the machine skews every figure: recorded with them
    with Lab(nodes=1, clients=1, direct=True) as lab:
        node, client = lab.nodes[0], lab.clients[0]
        pinned: dict[str, list[int]] = {}
        lab.run(client.netns, [sys.executable, __file__, "--role", "sink", "--interface", client.interfaces[0]])
        if args.napi == "threaded":
            pinned = {
                "node": _pin_receive_path(lab, node.netns, node.interfaces[0], args.responder_cpu),
                # The client's reply counting preempts the sender on their shared core: a reply that arrives is
                # counted, and the sender gets what is left (on real networks the client has its own CPUs).
                "client": _pin_receive_path(lab, client.netns, client.interfaces[0], args.sender_cpu, realtime=True),
            }
        for scenario in args.scenarios:
            try:
                result = run_scenario(lab, scenario, args)
            except TimeoutError:
                raise
            except Exception as exc:  # one broken backend must not hide the others' figures
                result = Result(scenario, 0, 0, 0.0, 0, 0, None, error=f"{type(exc).__name__}: {exc}")
            results.append(result)
            print(f"  {scenario}: done", file=sys.stderr, flush=True)
    signal.alarm(0)
    print(format_table(results))
    print(f"targets: {TARGETS}")
    print(f"sender: {args.sender}, napi: {args.napi}, load average before/after: "
          f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    report = {
        "duration_s": args.duration, "rate_pps": args.rate, "sender": args.sender, "sender_cpu": args.sender_cpu,
        "responder_cpu": args.responder_cpu, "sources": SOURCES, "napi": args.napi, "napi_threads": pinned,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "results": [asdict(r) | {"sent_per_s": r.sent_per_s, "replies_per_s": r.replies_per_s,
                                 "answered": r.answered} for r in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r.error is None for r in results) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds of flood per scenario (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 s per scenario: a smoke run, figures are noisy")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list from {', '.join(SCENARIOS)}")
    parser.add_argument("--rate", type=float, default=0.0, help="offered requests/s (0 = as fast as possible)")
    parser.add_argument("--sender", choices=("mmsg", "live"), default="mmsg",
                        help="mmsg: AF_PACKET sendmmsg from Cython (default); live: in-kernel generator "
                             "(BPF_PROG_RUN with live frames; slower than mmsg on this VM's veth, see README)")
    parser.add_argument("--napi", choices=("threaded", "softirq"), default="threaded",
                        help="threaded: each veth's receive path in a NAPI thread pinned to its side's core; "
                             "softirq: links as the lab makes them (receive work runs on the transmitting core)")
    parser.add_argument("--sender-cpu", type=int, default=0)
    parser.add_argument("--responder-cpu", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the JSON report")
    # internal: the per-namespace workers
    parser.add_argument("--role", choices=("drive", "send", "serve", "sink"), default="drive", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--interface", help=argparse.SUPPRESS)
    parser.add_argument("--vip", help=argparse.SUPPRESS)
    parser.add_argument("--mac", help=argparse.SUPPRESS)
    parser.add_argument("--subnet-base", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--detach", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1.0 if args.quick else 5.0
    if not 0 < args.duration <= 60:
        parser.error(f"--duration {args.duration}: must be in (0, 60] seconds")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with suppress(BrokenPipeError):
        if args.role == "send":
            return role_send(args)
        if args.role == "serve":
            return role_serve(args)
        if args.role == "sink":
            return role_sink(args)
        return drive(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
