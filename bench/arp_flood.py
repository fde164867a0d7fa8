"""ARP and NDP floods: every responder backend, the kernel's own ARP and a MetalLB-like Go responder, in one run.

Topology: metallb_fast.lab.Lab(nodes=1, clients=1, direct=True), one veth pair between a client namespace and a
node namespace. The client floods at C speed (metallb_fast.testing._flood: prebuilt frames, sendmmsg in a GIL-free
loop) while the responder under test runs in the node namespace; replies are counted on the client's veth.

Scenarios: sender-only (the node drops everything: what the sender reaches), xdp-native, xdp-generic, ring
(Cython), python, kernel (the VIPs on the node's interface), go (goarp: MetalLB's path, mdlayher/arp in userspace).
Parts, per scenario (bench/flood_scenarios.py plans them):
- capacity: full-rate floods of ARP, NDP (Neighbor Solicitations) and a mixed ARP flood (9 in 10 requests for
  addresses nobody owns), each with the responder core's busy time per reply (/proc/stat), the ceiling that cost
  implies, and the responder process's CPU (/proc/PID/stat);
- overload: ARP offered at 25/50/100/200 % of the responder's measured capacity (--rate of the sender);
- peak: the userspace responders (ring, python, go) paced at fixed rates: their best replies/s, which receive
  livelock hides from the full-rate capacity run;
- legit: a legitimate client's ARP round trips (flood_probe.py) while an attacker floods from 1 and from 1,000
  MACs, without and (xdp, ring, python) with the per-source flood limit.
The sender is pinned to one core and the responder to the other; each veth's receive path runs in a threaded-NAPI
kernel thread pinned to its side's core (node: responder core; client: sender core).

    python bench/arp_flood.py [--duration 5] [--quick] [--scenarios ring,go] [--parts capacity,legit]

It prints tables and the issue's targets (met / not met), writes bench/results/arp_flood.json and PNG plots (with
matplotlib). Internally the script re-runs itself inside the namespaces (--role send / serve / sink).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench import flood_scenarios as plan  # noqa: E402
from bench.flood_scenarios import CpuTicks, ProbeSummary, Run  # noqa: E402
from metallb_fast.dataplane import packets  # noqa: E402
from metallb_fast.texttable import render_table  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "arp_flood.json"
SCENARIOS = ("sender-only", "xdp-native", "xdp-generic", "ring", "python", "kernel", "go")
DRAIN_S = 0.5  # after the flood, replies still in flight are counted
READY_TIMEOUT_S = 60.0
BASELINE_S = 1.0  # the responder core watched idle before anything runs: other work on the machine shows there
PROBE_INTERVAL_S = 0.02  # the legitimate client's requests: 50/s, well under any sensible per-source limit
COUNTERS = ("rx_packets", "tx_packets", "rx_dropped", "tx_dropped")
XDP_FLAGS_DRV_MODE = 1 << 2
HZ = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------ workers


def _counters(interface: str) -> dict[str, int]:
    """The interface's counters as this namespace's sysfs shows them (`ip netns exec` remounts /sys)."""
    base = Path("/sys/class/net") / interface / "statistics"
    return {name: int((base / name).read_text()) for name in COUNTERS}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


def _cpu_snapshot(cpus: Sequence[int], pid: int, napi: Sequence[int]) -> tuple[list[CpuTicks], int | None, int | None]:
    """Each CPU's ticks, the responder process's and the NAPI threads' utime + stime (None: no such task)."""
    stat = Path("/proc/stat").read_text()
    ticks = [plan.parse_cpu_ticks(stat, cpu) for cpu in cpus]
    return ticks, _task_ticks([pid] if pid else []), _task_ticks(napi)


def _task_ticks(pids: Sequence[int]) -> int | None:
    if not pids:
        return None
    return sum(plan.parse_process_ticks(Path(f"/proc/{pid}/stat").read_text()) for pid in pids)


def _difference(after: int | None, before: int | None) -> int | None:
    return after - before if after is not None and before is not None else None


def _ticks_delta(after: CpuTicks, before: CpuTicks) -> list[int]:
    return [after.busy - before.busy, after.total - before.total]


def role_send(args: argparse.Namespace) -> int:
    """In the client namespace: flood (with the legitimate client probing alongside), wait for stragglers, print
    one JSON line with the sender's, the client veth's and /proc's counters over the flood."""
    from bench.flood_probe import Prober, ProbeSpec
    from metallb_fast.testing import _flood

    os.sched_setaffinity(0, {args.cpu})
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    frames = plan.flood_frames(
        args.kind,
        args.sources,
        IPv4Address(args.vip),
        IPv6Address(args.vip6),
        IPv4Network(args.lan4),
        IPv6Network(args.lan6),
    )
    flooding = threading.Event()
    prober = None
    if args.probe_mac:
        spec = ProbeSpec(
            args.interface,
            packets.parse_mac(args.probe_mac),
            IPv4Address(args.probe_ip),
            IPv4Address(args.vip),
            PROBE_INTERVAL_S,
            args.cpu,
        )
        prober = Prober(spec, flooding, args.duration)
        prober.start()
    ifindex = socket.if_nametoindex(args.interface)
    before = _counters(args.interface)
    cpus = (args.responder_cpu, args.cpu)
    napi = [int(pid) for pid in args.napi_pids.split(",") if pid]
    (core0, sender0), proc0, napi0 = _cpu_snapshot(cpus, args.responder_pid, napi)
    t0 = time.monotonic()
    flooding.set()
    if args.sender == "live":
        result = _flood.flood_live(ifindex, frames, args.duration, args.rate)
    else:
        result = _flood.flood(ifindex, frames, args.duration, 64, args.rate, args.pushback == "drop")
    time.sleep(DRAIN_S)
    (core1, sender1), proc1, napi1 = _cpu_snapshot(cpus, args.responder_pid, napi)
    result["window_s"] = time.monotonic() - t0
    result["client"] = _delta(_counters(args.interface), before)
    result["core"] = _ticks_delta(core1, core0)
    result["sender_core"] = _ticks_delta(sender1, sender0)
    result["process_ticks"] = _difference(proc1, proc0)
    result["napi_ticks"] = _difference(napi1, napi0)
    if prober is not None:
        prober.join(timeout=args.duration + 5)
        result["probe"] = {"rtts": prober.rtts, "refused": prober.refused, "failure": prober.failure}
    print(json.dumps(result), flush=True)
    return 0


def role_sink(args: argparse.Namespace) -> int:
    """In a namespace: attach the counting sink (native XDP_DROP, passing frames to --keep-mac) to an interface.

    Native XDP on the client is what makes the node's XDP_TX deliverable on veth; dropping in XDP (rather than
    passing replies up the client's stack) keeps the client's share of the CPU small and equal in every scenario.
    The attachment outlives this process: the driver detaches it (--detach) when done.
    """
    from pyroute2 import IPRoute

    from metallb_fast.testing import _flood

    keep = packets.parse_mac(args.mac) if args.mac else b""
    fd = -1 if args.detach else _flood.load_xdp_drop("mlbf_flood_sink", keep)
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=args.interface)[0]
            ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]})
    finally:
        if fd >= 0:
            os.close(fd)
    return 0


def _open_backend(backend: str, interface: str, args: argparse.Namespace) -> Any:
    from metallb_fast.dataplane.backends import open_responder

    options: dict[str, Any] = {}
    if args.limit_action:
        from metallb_fast.dataplane.floodlimit import FloodLimit

        options["flood_limit"] = FloodLimit(action=args.limit_action, **_limit_settings(args))
    if backend in ("xdp-native", "xdp-generic"):
        return open_responder("xdp", [interface], mode=backend.split("-")[1], **options)
    if backend in ("ring", "python"):
        return open_responder(backend, [interface], **options)
    raise ValueError(f"--backend {backend!r}: not a responder backend")


def role_serve(args: argparse.Namespace) -> int:
    """In the node namespace: answer for the VIPs until SIGTERM, then print the responder's counters as JSON."""
    os.sched_setaffinity(0, {args.cpu})  # before the responder starts its threads: they inherit both
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    responder = _open_backend(args.backend, args.interface, args)
    try:
        mac = packets.parse_mac(args.mac)
        responder.sync({(IPv4Address(args.vip), args.interface): mac, (IPv6Address(args.vip6), args.interface): mac})
        print("ready", file=sys.stderr, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        stats = responder.stats()
    finally:
        responder.close()
    print(
        json.dumps(
            {
                "backend": stats.backend,
                "requests": stats.requests,
                "replies": stats.replies,
                "declined": {verdict.value: count for verdict, count in stats.declined.items() if count},
            }
        ),
        flush=True,
    )
    return 0


# ------------------------------------------------------------------------------------------------ driver


@dataclass
class Session:
    """One responder running in the node namespace: its pid (None: the kernel answers), and how to stop it."""

    pid: int | None
    stop: Callable[[], dict[str, Any] | None]


def _read_node_counters(lab: Any, netns: str, interface: str) -> dict[str, int]:
    out = lab.run(netns, ["cat", *(f"/sys/class/net/{interface}/statistics/{name}" for name in COUNTERS)])
    return dict(zip(COUNTERS, map(int, out.stdout.split()), strict=True))


def _go_counters(out: dict[str, Any]) -> dict[str, Any]:
    """goarp's exit line in the serve worker's shape."""
    declined = {
        "not_owned": out.get("notowned", 0),
        "wrong_dst": out.get("wrong_dst", 0),
        "tx_errors": out.get("tx_errors", 0),
        "read_errors": out.get("read_errors", 0),
    }
    return {
        "backend": "go",
        "requests": out.get("req", 0),
        "replies": out.get("tx", 0),
        "received": out.get("rx", 0),
        "declined": {k: v for k, v in declined.items() if v},
    }


@contextmanager
def _worker(
    lab: Any,
    netns: str,
    argv: list[str],
    what: str,
    ready: str,
    decode: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> Iterator[Session]:
    """A process in `netns` that prints `ready` on stderr once it answers and one JSON line on stdout at SIGTERM
    (its counters, in the serve worker's shape after `decode`)."""
    proc = lab.popen(netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
            stopped["result"] = decode(json.loads(lines[-1])) if lines else {"error": (err or "").strip()[-500:]}
        return stopped["result"]

    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if ready in line or not line:
                break
        if not line or ready not in line:
            raise RuntimeError(f"{what} did not start: {stop().get('error') or line.strip()}")
        yield Session(proc.pid, stop)
    finally:
        stop()


@contextmanager
def _sink(lab: Any, netns: str, interface: str, keep_mac: bytes | None = None) -> Iterator[None]:
    """The counting sink on `interface` while the block runs (role_sink), detached after it."""
    sink = [sys.executable, __file__, "--role", "sink", "--interface", interface]
    lab.run(netns, [*sink, *(["--mac", packets.format_mac(keep_mac)] if keep_mac else [])])
    try:
        yield
    finally:
        lab.run(netns, [*sink, "--detach"], check=False)


@contextmanager
def _session(lab: Any, scenario: str, args: argparse.Namespace, protection: str) -> Iterator[Session]:
    node = lab.nodes[0]
    netns, interface = node.netns, node.interfaces[0]
    vip, vip6 = lab.vip_v4(0), lab.vip_v6(0)
    if scenario == "sender-only":
        # The node drops everything in XDP: what is measured is the sender (and the veth), not the node's stack.
        with _sink(lab, netns, interface):
            yield Session(None, lambda: None)
    elif scenario == "kernel":
        addresses = [[f"{vip}/32"], [f"{vip6}/128", "nodad"]]
        for address in addresses:
            lab.run(netns, ["ip", "addr", "add", address[0], "dev", interface, *address[1:]])
        try:
            yield Session(None, lambda: None)
        finally:
            for address in addresses:
                lab.run(netns, ["ip", "addr", "del", address[0], "dev", interface], check=False)
    elif scenario == "go":
        from bench.goarp import goarp_binary

        argv = [
            "nice",
            "-n",
            str(args.nice),
            "taskset",
            "-c",
            str(args.responder_cpu),
            str(goarp_binary(args.goarp_src)),
            "-i",
            interface,
            "-ip",
            str(vip),
        ]
        with _worker(lab, netns, argv, "goarp", "answering on", _go_counters) as session:
            yield session
    else:
        argv = [
            sys.executable,
            __file__,
            "--role",
            "serve",
            "--backend",
            scenario,
            "--interface",
            interface,
            "--vip",
            str(vip),
            "--vip6",
            str(vip6),
            "--mac",
            packets.format_mac(node.mac(interface)),
            "--cpu",
            str(args.responder_cpu),
            "--nice",
            str(args.nice),
        ]
        if protection != "off":
            argv += ["--limit-action", protection, *_limit_argv(args)]
        with _worker(lab, netns, argv, f"{scenario} responder", "ready") as session:
            yield session


def _limit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flood limit's rate and burst given on the command line (the rest: FloodLimit's defaults)."""
    given = {"rate": args.flood_rate, "burst": args.flood_burst}
    return {name: value for name, value in given.items() if value is not None}


def _limit_argv(args: argparse.Namespace) -> list[str]:
    return [arg for name, value in _limit_settings(args).items() for arg in (f"--flood-{name}", str(value))]


def run_flood(lab: Any, session: Session, run: Run, args: argparse.Namespace) -> Run:
    """One flood of the plan against the running session; the run's figures filled in."""
    node, client = lab.nodes[0], lab.clients[0]
    interface, client_if = node.interfaces[0], client.interfaces[0]
    endpoint = client.endpoint(client_if)
    argv = [
        sys.executable,
        __file__,
        "--role",
        "send",
        "--interface",
        client_if,
        "--kind",
        run.kind,
        "--sources",
        str(run.sources),
        "--vip",
        str(lab.vip_v4(0)),
        "--vip6",
        str(lab.vip_v6(0)),
        "--lan4",
        str(endpoint.ipv4.network),
        "--lan6",
        str(endpoint.ipv6.network),
        "--duration",
        str(args.duration),
        "--rate",
        str(run.rate_pps),
        "--cpu",
        str(args.sender_cpu),
        "--responder-cpu",
        str(args.responder_cpu),
        "--responder-pid",
        str(session.pid or 0),
        "--sender",
        args.sender,
        "--pushback",
        args.pushback,
        "--nice",
        str(args.nice),
        "--napi-pids",
        ",".join(map(str, args.node_napi)),
    ]
    if run.part == "legit":
        argv += ["--probe-mac", packets.format_mac(endpoint.mac), "--probe-ip", str(endpoint.ipv4.ip)]
    node_before = _read_node_counters(lab, node.netns, interface)
    sent = lab.run(client.netns, argv, timeout=args.duration + 60)
    node_after = _read_node_counters(lab, node.netns, interface)
    flood = json.loads(sent.stdout.strip().splitlines()[-1])
    probe = flood.get("probe")
    if probe and probe.get("failure"):
        return dataclasses.replace(run, error=f"legitimate client: {probe['failure']}")
    return dataclasses.replace(
        run,
        sent=flood["sent"],
        dropped=flood["dropped"],
        pushbacks=flood["pushbacks"],
        elapsed_s=flood["elapsed_s"],
        replies=flood["client"]["rx_packets"],
        delivered=node_after["rx_packets"] - node_before["rx_packets"],
        window_s=flood["window_s"],
        core=CpuTicks(*flood["core"]),
        sender_core=CpuTicks(*flood["sender_core"]),
        process_ticks=flood["process_ticks"],
        napi_ticks=flood["napi_ticks"],
        hz=HZ,
        probe=ProbeSummary.of(probe["rtts"], probe["refused"]) if probe else None,
    )


def _with_rate(run: Run, done: Sequence[Run]) -> Run:
    """An overload run's offered rate from this responder's capacity (an error when that was not measured)."""
    if run.load_fraction is None:
        return run
    capacity = plan.capacity(done, run.responder)
    if not capacity:
        return dataclasses.replace(run, error="no capacity measured for the overload curve")
    return dataclasses.replace(run, rate_pps=run.load_fraction * capacity)


def run_scenario(
    lab: Any, scenario: str, args: argparse.Namespace, results: list[Run], counters: dict[str, Any]
) -> None:
    """Every planned flood of one scenario, unprotected then with each flood limit; appended to `results`."""
    for protection in plan.protections(scenario, args.parts, args.flood_actions):
        runs = plan.planned_runs(scenario, args.parts, protection)
        if not runs:
            continue
        label = scenario if protection == "off" else f"{scenario} (limit, {protection})"
        done = 0
        try:
            with _session(lab, scenario, args, protection) as session:
                for run in runs:
                    run = _with_rate(run, results)
                    if run.error is None:
                        try:
                            run = run_flood(lab, session, run, args)
                        except (subprocess.SubprocessError, ValueError, KeyError) as exc:
                            run = dataclasses.replace(run, error=f"{type(exc).__name__}: {exc}")
                    results.append(run)
                    done += 1
                    print(
                        f"  {label}: {run.part} {run.kind} x{run.sources}"
                        f"{f' at {run.load_fraction:.0%}' if run.load_fraction else ''}: "
                        f"{run.error or f'{run.replies_per_s:,.0f} replies/s'}",
                        file=sys.stderr,
                        flush=True,
                    )
                counters[label] = session.stop()
        except TimeoutError:
            raise
        except Exception as exc:  # one broken backend must not hide the others' figures
            error = f"{type(exc).__name__}: {exc}"
            results.extend(dataclasses.replace(r, error=error) for r in runs[done:])
            print(f"  {label}: {error}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ report


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _times(run: Run, base: Run | None) -> str:
    """run's replies/s as a multiple of base's (same flood kind)."""
    return f"{run.replies_per_s / base.replies_per_s:.2f}" if base and base.replies_per_s else "-"


def _of_peak(run: Run, runs: Sequence[Run]) -> str:
    top = plan.peak(runs, run.responder)
    return _fmt(run.replies_per_s / top if top else None, ".0f", 100) + "%"


Cell = Callable[[Run, Sequence[Run]], str]
# Per part: the columns that name a run (kept on an error row), then the measured ones.
KEYS: dict[str, list[tuple[str, Cell]]] = {
    "capacity": [("scenario", lambda r, _: r.responder), ("kind", lambda r, _: r.kind)],
    "overload": [("scenario", lambda r, _: r.responder), ("load", lambda r, _: f"{100 * (r.load_fraction or 0):.0f}%")],
    "peak": [("scenario", lambda r, _: r.responder)],
    "legit": [
        ("scenario", lambda r, _: r.responder),
        ("limit", lambda r, _: r.protection),
        ("MACs", lambda r, _: str(r.sources)),
    ],
}
PROC_CPU: tuple[str, Cell] = ("proc CPU", lambda r, _: _fmt(r.process_cpu, ".1f", 100) + "%")
# Paced floods (the overload curve at shares of capacity, the peak search at fixed rates).
PACED: list[tuple[str, Cell]] = [
    ("asked/s", lambda r, _: f"{r.rate_pps:,.0f}"),
    ("offered/s", lambda r, _: f"{r.offered_per_s:,.0f}"),
    ("lost", lambda r, _: f"{100 * r.lost:.1f}%"),
    ("replies/s", lambda r, _: f"{r.replies_per_s:,.0f}"),
    ("answered", lambda r, _: f"{100 * r.answered:.1f}%"),
    ("of peak", _of_peak),
    PROC_CPU,
]
FIGURES: dict[str, list[tuple[str, Cell]]] = {
    "capacity": [
        ("offered/s", lambda r, _: f"{r.offered_per_s:,.0f}"),
        ("lost", lambda r, _: f"{100 * r.lost:.1f}%"),
        ("replies/s", lambda r, _: f"{r.replies_per_s:,.0f}"),
        ("answered", lambda r, _: f"{100 * r.answered:.1f}%"),
        ("core busy", lambda r, _: _fmt(r.core_busy, ".0f", 100) + "%"),
        ("core ns/reply", lambda r, _: _fmt(r.core_ns_per_reply, ",.0f")),
        ("ns/reply", lambda r, _: _fmt(r.ns_per_reply, ",.0f")),
        ("ns/request", lambda r, _: _fmt(r.ns_per_request, ",.0f")),
        ("ceiling/s", lambda r, _: _fmt(r.ceiling_per_s, ",.0f")),
        PROC_CPU,
        ("x kernel", lambda r, runs: _times(r, plan.find(runs, "kernel", "capacity", kind=r.kind))),
        ("x go", lambda r, runs: _times(r, plan.find(runs, "go", "capacity", kind=r.kind))),
    ],
    "overload": PACED,
    "peak": PACED,
    "legit": [
        ("flood/s", lambda r, _: f"{r.offered_per_s:,.0f}"),
        ("lost", lambda r, _: f"{100 * r.lost:.1f}%"),
        ("replies/s", lambda r, _: f"{r.replies_per_s:,.0f}"),
        ("client answered", lambda r, _: f"{100 * r.probe.answered_share:.1f}%" if r.probe else "-"),
        ("p50 ms", lambda r, _: _fmt(r.probe.p50_ms if r.probe else None, ".3f")),
        ("p99 ms", lambda r, _: _fmt(r.probe.p99_ms if r.probe else None, ".3f")),
        ("max ms", lambda r, _: _fmt(r.probe.max_ms if r.probe else None, ".3f")),
        ("refused", lambda r, _: str(r.probe.refused) if r.probe else "-"),
        PROC_CPU,
    ],
}


# What a responder that answers nothing (sender-only) has no figure for.
PER_REPLY = frozenset({"answered", "core ns/reply", "ns/reply", "ceiling/s", "x kernel", "x go"})


def format_part(runs: Sequence[Run], part: str) -> str:
    """One part's runs as a table (an error row keeps the columns that name the run)."""
    keys, figures = KEYS[part], FIGURES[part]
    rows = [[name for name, _ in (*keys, *figures)]]
    for run in runs:
        if run.part != part:
            continue
        named = [cell(run, runs) for _, cell in keys]
        if run.error is None:
            silent = run.responder in plan.NO_FLOOD_RESPONDERS
            rows.append(named + ["-" if silent and name in PER_REPLY else cell(run, runs) for name, cell in figures])
        else:
            rows.append(named + [f"error: {run.error}"] + [""] * (len(figures) - 1))
    return render_table(rows)


def format_targets(runs: Sequence[Run]) -> str:
    return "\n".join(f"  [{t.verdict:^12}] {t.goal}: {t.measured}" for t in plan.evaluate_targets(runs))


def _report_run(run: Run) -> dict[str, Any]:
    return dataclasses.asdict(run) | {
        "offered_per_s": run.offered_per_s,
        "lost": run.lost,
        "replies_per_s": run.replies_per_s,
        "answered": run.answered,
        "core_busy": run.core_busy,
        "ns_per_request": run.ns_per_request,
        "core_ns_per_reply": run.core_ns_per_reply,
        "ns_per_reply": run.ns_per_reply,
        "ceiling_per_s": run.ceiling_per_s,
        "process_cpu": run.process_cpu,
        "probe_answered": run.probe.answered_share if run.probe else None,
    }


# ------------------------------------------------------------------------------------------------ the run


def _napi_threads(interface: str) -> set[int]:
    """pids of threaded-NAPI kernel threads for interfaces called `interface` (in any namespace)."""
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with suppress(OSError):
            if comm.read_text().startswith(f"napi/{interface}-"):
                pids.add(int(comm.parent.name))
    return pids


def _pin_receive_path(lab: Any, netns: str, interface: str, cpu: int, nice: int, realtime: bool = False) -> list[int]:
    """Run this interface's receive processing in its own NAPI kernel thread, pinned to `cpu`.

    On veth, GRO turns NAPI on (and TSO off on the sender lets plain skbs use it), and `threaded` moves the
    poll out of softirq context, which would otherwise run on whichever core transmitted: the sender's. So the
    node's whole receive path (XDP, kernel ARP, AF_PACKET delivery) runs on the responder core, and the client's
    reply counting on the sender core (realtime: it preempts the sender). The node's thread gets the responder's
    nice value: the two share the core as equals, and other work on the machine gets less of it.
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
        else:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    return pinned


def _idle_baseline(cpu: int) -> float:
    """How busy the responder core is with nothing of ours on it (other sessions' work skews ns/reply)."""
    before = plan.parse_cpu_ticks(Path("/proc/stat").read_text(), cpu)
    time.sleep(BASELINE_S)
    after = plan.parse_cpu_ticks(Path("/proc/stat").read_text(), cpu)
    total = after.total - before.total
    return (after.busy - before.busy) / total if total else 0.0


def _out_of_time(signum: int, frame: object) -> None:
    raise TimeoutError("arp_flood: the run exceeded its time budget (a worker or the lab hung)")


def flood_protection_available() -> bool:
    return importlib.util.find_spec("metallb_fast.dataplane.floodlimit") is not None


def drive(args: argparse.Namespace) -> int:
    from metallb_fast.lab import Lab

    if os.geteuid() != 0:
        print("arp_flood: needs root (network namespaces, XDP)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("arp_flood: warning: one CPU, sender and responder share it", file=sys.stderr)
    notes = []
    if args.flood_actions and not flood_protection_available():
        notes.append("flood protection not measured: metallb_fast.dataplane.floodlimit is not in this checkout")
        args.flood_actions = []
    limit = None
    if args.flood_actions:
        from metallb_fast.dataplane.floodlimit import FloodLimit

        settings = FloodLimit(**_limit_settings(args))  # a bad rate or burst stops here, not in every worker
        limit = {"rate": settings.rate, "burst": settings.burst, "actions": args.flood_actions}
    floods = sum(
        len(plan.planned_runs(s, args.parts, p))
        for s in args.scenarios
        for p in plan.protections(s, args.parts, args.flood_actions)
    )
    # A hard bound on the whole run: the alarm raises in the main thread, so the lab is still torn down.
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(floods * (args.duration + 20) + len(args.scenarios) * 2 * 60 + 120))
    load_before = os.getloadavg()  # other work on the machine skews every figure: recorded with them
    idle = _idle_baseline(args.responder_cpu)
    results: list[Run] = []
    counters: dict[str, Any] = {}
    with Lab(nodes=1, clients=1, direct=True) as lab:
        node, client = lab.nodes[0], lab.clients[0]
        pinned: dict[str, list[int]] = {}
        client_if = client.interfaces[0]
        with _sink(lab, client.netns, client_if, client.mac(client_if)):
            if args.napi == "threaded":
                pinned = {
                    "node": _pin_receive_path(lab, node.netns, node.interfaces[0], args.responder_cpu, args.nice),
                    # The client's reply counting preempts the sender on their shared core: a reply that arrives
                    # is counted, and the sender gets what is left (on real networks the client has its own CPUs).
                    "client": _pin_receive_path(
                        lab, client.netns, client_if, args.sender_cpu, args.nice, realtime=True
                    ),
                }
            args.node_napi = pinned.get("node", [])
            for scenario in args.scenarios:
                run_scenario(lab, scenario, args, results, counters)
    signal.alarm(0)
    load_after = os.getloadavg()
    titles = {
        "capacity": "capacity (full-rate floods)",
        "overload": "overload curve (ARP)",
        "peak": "peak search (paced ARP floods, userspace responders)",
        "legit": "legitimate client during an ARP flood",
    }
    for part, title in titles.items():
        if any(r.part == part for r in results):
            print(f"\n{title}\n{format_part(results, part)}", end="")
    print("\ntargets (issue 11):\n" + format_targets(results))
    for note in notes:
        print(f"note: {note}")
    print(
        f"sender: {args.sender}, pushback: {args.pushback}, napi: {args.napi}, {args.duration:g} s per flood, "
        "responder core idle baseline "
        f"{100 * idle:.0f} % busy, load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}"
    )
    report = {
        "duration_s": args.duration,
        "sender": args.sender,
        "pushback": args.pushback,
        "nice": args.nice,
        "sender_cpu": args.sender_cpu,
        "responder_cpu": args.responder_cpu,
        "napi": args.napi,
        "napi_threads": pinned,
        "hz": HZ,
        "flood_limit": limit,
        "probe_interval_s": PROBE_INTERVAL_S,
        "responder_core_idle_busy": idle,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "notes": notes,
        "responder_counters": counters,
        "targets": [dataclasses.asdict(t) | {"verdict": t.verdict} for t in plan.evaluate_targets(results)],
        "runs": [_report_run(r) for r in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    from bench.flood_plots import plot

    stem = args.json.with_suffix("")
    plotted = plot(results, stem.with_name(stem.name + "_overload.png"), stem.with_name(stem.name + "_rtt.png"))
    print(f"wrote {args.json}; {plotted}")
    return 0 if all(r.error is None for r in results) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds per flood (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 s per flood: a smoke run, figures are noisy")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list from {', '.join(SCENARIOS)}")
    parser.add_argument("--parts", default=",".join(plan.PARTS), help=f"comma list from {', '.join(plan.PARTS)}")
    parser.add_argument(
        "--sender",
        choices=("mmsg", "live"),
        default="mmsg",
        help="mmsg: AF_PACKET sendmmsg from Cython (default); live: in-kernel generator "
        "(BPF_PROG_RUN with live frames; slower than mmsg on this VM's veth, see README)",
    )
    parser.add_argument(
        "--napi",
        choices=("threaded", "softirq"),
        default="threaded",
        help="threaded: each veth's receive path in a NAPI thread pinned to its side's core; "
        "softirq: links as the lab makes them (receive work runs on the transmitting core)",
    )
    parser.add_argument(
        "--pushback",
        choices=("drop", "retry"),
        default="drop",
        help="a frame the node's full receive ring refuses: drop (lost, as at a full NIC ring: the offered load "
        "can exceed what the node takes; default) or retry (the sender slows to what the node takes)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-20,
        help="nice value of the sender, the responder and the node's NAPI thread (default -20: on a shared machine "
        "other work then takes little of their cores; they keep equal shares of theirs)",
    )
    parser.add_argument("--sender-cpu", type=int, default=0)
    parser.add_argument("--responder-cpu", type=int, default=1)
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=None,
        help="the protected runs' per-source limit, requests/s (default: the speaker's default)",
    )
    parser.add_argument(
        "--flood-burst",
        type=int,
        default=None,
        help="the protected runs' per-source burst (default: the speaker's default)",
    )
    parser.add_argument(
        "--flood-actions",
        default="pass,drop",
        help="the protected runs: one per action over the limit, comma list of pass, drop "
        "(ring and python run the first only: for them both mean 'not answered'); '' = none",
    )
    parser.add_argument(
        "--goarp-src",
        type=Path,
        default=None,
        help="the Go responder's source (main.go, build.sh) when it is not built yet",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the JSON report (PNGs beside it)")
    # internal: the per-namespace workers
    parser.add_argument("--role", choices=("drive", "send", "serve", "sink"), default="drive", help=argparse.SUPPRESS)
    for name in (
        "--backend",
        "--interface",
        "--vip",
        "--vip6",
        "--mac",
        "--lan4",
        "--lan6",
        "--probe-mac",
        "--probe-ip",
    ):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="arp", help=argparse.SUPPRESS)
    parser.add_argument("--limit-action", choices=("pass", "drop"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sources", type=int, default=plan.FLOOD_SOURCES, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--responder-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--detach", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--napi-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1.0 if args.quick else 5.0
    if not 0 < args.duration <= 60:
        parser.error(f"--duration {args.duration}: must be in (0, 60] seconds")
    args.scenarios = _choices(parser, "--scenarios", args.scenarios, SCENARIOS)
    args.parts = _choices(parser, "--parts", args.parts, plan.PARTS)
    args.flood_actions = _choices(parser, "--flood-actions", args.flood_actions, ("pass", "drop"))
    return args


def _choices(parser: argparse.ArgumentParser, option: str, text: str, allowed: Sequence[str]) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in allowed]
    if unknown:
        parser.error(f"{option}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


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
