"""Failover as a client sees it: faults on a 3-node lab cluster, for each memberlist timing, side by side.

For every timing (`--ml-timing`, default fast,metallb,tuned: ours and MetalLB's default and tuned timers, all on our
speaker) a ClusterLab (a real API server, the controller, three speakers with --backend xdp, memberlist on) serves one
address; every node answers UDP to it with its own name (metallb_fast.lab.probe echo, as kube-proxy hands traffic to
a Pod) and the client's probe sends a UDP datagram and an ARP request for it every 10 ms. Each fault of
metallb_fast.lab.faults is injected `--trials` times; per trial the probe's records give the client-seen outage, the
move time, how long two MACs answered at once, and the moves that should not have happened.

    sudo .venv/bin/python bench/failover.py [--trials 10] [--ml-timing fast,metallb,tuned] [--faults a,b]
         [--soak SECONDS] [--liveness-timeout S] [--json PATH] [--png PATH]

It prints one table, writes bench/results/failover.json and a PNG timeline of one trial per timing
(bench/results/failover.png, with matplotlib). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from metallb_fast.lab.cluster import (  # noqa: E402
    METALLB_NAMESPACE,
    ClusterLab,
    RunningProbe,
    delete_pods_now,
    started_kube,
)
from metallb_fast.lab.faults import Fault, Faults  # noqa: E402
from metallb_fast.lab.probe import ProbeRecords, TrialFigures, analyse, steady_owner  # noqa: E402
from metallb_fast.lab.waiting import wait_for  # noqa: E402
from metallb_fast.membership.timing import TIMINGS, suspicion_timeout  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "failover.json"
PNG = ROOT / "bench" / "results" / "failover.png"
NODES = 3
NAMESPACE = "failover"
SERVICE = "probe"
TIMING_ORDER = ("fast", "metallb", "tuned")
SPEAKER_SELECTOR = "app=metallb,component=speaker"  # the speaker Pods ClusterLab registers for memberlist
STEADY_SPAN_S = 1.5  # one node alone answers every probe and every ARP sample this long: the cluster is settled
STEADY_TIMEOUT_S = 90.0
SETTLE_MARGIN_S = 3.0  # detection bound + this: reconcile, gratuitous ARP, the client's switch-over
SPEAKER_LIVENESS_DEFAULT_S = 10.0  # `metallb-fast speaker --liveness-timeout` when the bench passes none


@dataclass(frozen=True)
class FaultSpec:
    name: str
    target: str  # "owner": the node answering the address; "other": one that does not
    expect: str  # "move": exactly one move; "stay": none; "flap": away and back at most (<= 2 moves)
    hold_s: Callable[[argparse.Namespace, float], float] | None  # in effect this long, then undone (None: the
    #                                                               fault lasts until the address moved)
    post_s: Callable[[argparse.Namespace, float], float]  # observed this long after the undo (or the instant fault)
    inject: Callable[[Faults, str, argparse.Namespace], Fault]
    what: str


def _detect(_: argparse.Namespace, bound: float) -> float:
    return bound


FAULTS: tuple[FaultSpec, ...] = (
    FaultSpec("sigkill", "owner", "move", None, _detect, lambda f, n, a: f.sigkill(n),
              "SIGKILL of the owner's speaker (the node and its echo stay up)"),
    FaultSpec("node-death", "owner", "move", None, _detect, lambda f, n, a: f.node_death(n),
              "the owner's switch port down + its speaker SIGKILLed"),
    FaultSpec("drain", "owner", "move", None, _detect, lambda f, n, a: f.drain(n),
              "kubectl cordon + SIGTERM of the owner's speaker, not restarted"),
    FaultSpec("restart-owner", "owner", "stay", None, lambda a, b: b + 10.0, lambda f, n, a: f.restart(n),
              "SIGTERM of the owner's speaker, started again at once (a rolling update: --on-sigterm=auto)"),
    FaultSpec("restart-other", "other", "stay", None, lambda a, b: b + 10.0, lambda f, n, a: f.restart(n),
              "SIGTERM of a non-owner's speaker, started again at once"),
    FaultSpec("pause", "owner", "stay", lambda a, b: a.pause_s, _detect, lambda f, n, a: f.pause(n),
              "SIGSTOP of the owner's speaker for --pause-s, then SIGCONT"),
    FaultSpec("cpu-starve", "owner", "stay", lambda a, b: a.hold_s, lambda a, b: 3.0,
              lambda f, n, a: f.starve_cpu(n, a.cpu_fraction), "the owner's speaker at --cpu-fraction of a CPU"),
    FaultSpec("loss-delay", "owner", "stay", lambda a, b: a.hold_s, lambda a, b: 3.0,
              lambda f, n, a: f.impair_lan(n, loss=a.loss, delay_s=a.delay_ms / 1000),
              "--loss and --delay-ms (each way) on the owner's link"),
    FaultSpec("link-flap", "owner", "flap", lambda a, b: a.link_down_s, _detect, lambda f, n, a: f.link_down(n),
              "the owner's switch port down for --link-down-s, then up"),
    FaultSpec("partition", "owner", "flap", lambda a, b: b + 2.0, _detect, lambda f, n, a: f.block_memberlist(n),
              "memberlist (TCP+UDP 7946) and heartbeat (UDP 7947) blocked at the owner's port for a detection time"),
)
FAULT_NAMES = tuple(f.name for f in FAULTS)


def detection_bound(timing_name: str, nodes: int = NODES) -> float:
    """The longest crash -> dead the memberlist formula allows with no confirmation needed (k = 0 at N = 3):
    a full round-robin, the probe's deadline, the minimum suspicion, one gossip hop, plus SETTLE_MARGIN_S."""
    timing = TIMINGS[timing_name]
    low, _ = suspicion_timeout(timing, nodes)
    return (nodes - 1) * timing.probe_interval + timing.probe_interval + low + timing.gossip_interval + SETTLE_MARGIN_S


def false_moves(expect: str, moves: int) -> int:
    if expect == "stay":
        return moves
    if expect == "move":
        return max(0, moves - 1)
    return max(0, moves - 2)


# ------------------------------------------------------------------------------------------------ one cluster

class Bench:
    """One timing's cluster, its probe, and the trials run on it."""

    def __init__(self, cluster: ClusterLab, probe: RunningProbe, address: str) -> None:
        self.cluster = cluster
        self.probe = probe
        self.address = address
        self.nodes = [h.name for h in cluster.lab.nodes]
        self.mac_of = cluster.node_macs()
        self.node_of = {mac: n for n, mac in self.mac_of.items()}
        self.liveness_s = cluster.liveness_timeout_s or SPEAKER_LIVENESS_DEFAULT_S
        # Where the address lives with every node up (`metallb-fast plan`): each trial starts from there.
        wait_for(lambda: cluster.ingress(NAMESPACE, SERVICE), what=f"{SERVICE}'s address")
        self.home = wait_for(lambda: cluster.planned_nodes(NAMESPACE, SERVICE).get(address), what="plan names a node")

    def steady(self) -> str | None:
        """The home node alone answering, with every speaker up and in memberlist (None after the timeout)."""
        return self.cluster.wait_steady_owner(self.probe, STEADY_SPAN_S, STEADY_TIMEOUT_S, only=self.home)

    def trial(self, spec: FaultSpec, args: argparse.Namespace, bound: float) -> dict[str, Any]:
        owner = self.steady()
        if owner is None:
            return {"error": f"{self.home} was not alone answering within {STEADY_TIMEOUT_S:.0f} s",
                    "dead": self.cluster.dead_programs()}
        target = owner if spec.target == "owner" else next(n for n in self.nodes if n != owner)
        with Faults(self.cluster) as faults:
            fault = spec.inject(faults, target, args)
            hold = spec.hold_s(args, bound) if spec.hold_s is not None else None
            end = self._observe(fault, spec, hold, spec.post_s(args, bound), owner)
            time.sleep(0.1)  # the probe flushes every 50 ms
            records = self.probe.records()
            figures = analyse(records, fault.started_at, end)
        # Faults.__exit__ undid what was still in effect (a killed speaker is started again): not measured.
        result = {
            "owner": owner, "target": target, "expect": spec.expect, "window_s": round(end - fault.started_at, 3),
            "held_s": None if fault.undone_at is None or hold is None else round(fault.undone_at - fault.started_at, 3),
            "detail": {k: v for k, v in fault.detail.items() if k != "pid"},
            "figures": _figures_json(figures, fault.started_at),
            "false_moves": false_moves(spec.expect, len(figures.moves)),
            "missed_move": spec.expect == "move" and not figures.moves,
            "timeline": _timeline(records, fault.started_at, end, self.node_of),
        }
        return result

    def _observe(self, fault: Fault, spec: FaultSpec, hold: float | None, post: float, owner: str) -> float:
        """Poll until the trial's window is over; undo a held fault on time. Returns the window's end."""
        start = fault.started_at
        if hold is not None:  # held faults: fixed window
            self._sleep_until(start + hold)
            fault.undo()
            end = (fault.undone_at or time.monotonic()) + post
            self._sleep_until(end)
            return end
        if spec.expect != "move":  # instant faults (restart): fixed window
            end = start + post
            self._sleep_until(end)
            return end
        # Lasting faults: until the address has moved and settled (the old owner's fast path silent too), or the
        # detection bound plus the liveness deadline passed.
        deadline = start + post + self.liveness_s + STEADY_SPAN_S
        while time.monotonic() < deadline:
            now = time.monotonic()
            new = steady_owner(self.probe.records(), now, STEADY_SPAN_S, self.mac_of)
            if new is not None and new != owner and now - STEADY_SPAN_S > start:
                return now
            time.sleep(0.05)
        return deadline

    @staticmethod
    def _sleep_until(t: float) -> None:
        while (left := t - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


def _figures_json(figures: TrialFigures, fault_at: float) -> dict[str, Any]:
    data = asdict(figures)
    data["moves"] = figures.relative_moves(fault_at)
    for key, value in list(data.items()):
        if isinstance(value, float):
            data[key] = round(value, 4)
    return data


def _timeline(records: ProbeRecords, start: float, end: float, node_of: dict[str, str]) -> dict[str, Any]:
    """Times relative to the fault: the UDP answers by node, and the ARP samples by answering node."""
    window = records.window(start - 1.0, end)
    udp: dict[str, list[float]] = {}
    for t, _, node in window.answers:
        udp.setdefault(node, []).append(round(t - start, 3))
    arp: dict[str, list[float]] = {}
    for t, macs in window.arp_samples():
        for mac in macs:
            arp.setdefault(node_of.get(mac, mac), []).append(round(t - start, 3))
    return {"udp": udp, "arp": arp}


@contextlib.contextmanager
def timing_cluster(kube: Any, timing: str, log_dir: Path, args: argparse.Namespace) -> Iterator[Bench]:
    """A ClusterLab with memberlist at `timing`, the echo on every node, the address announced and probed."""
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    delete_pods_now(kube, METALLB_NAMESPACE, SPEAKER_SELECTOR)  # a previous lab's, still Terminating
    delete_pods_now(kube, NAMESPACE)
    # --on-sigterm=auto, as deployed: a SIGTERM restarts in place unless the Node is cordoned (drain: handover).
    with ClusterLab(kube, log_dir, nodes=NODES, backend="xdp", memberlist_timing=timing,
                    liveness_timeout_s=args.liveness_timeout, on_sigterm="auto") as cluster:
        try:
            address = str(cluster.lab.vip_v4(0))
            cluster.serve_echo([address])
            # Before the Service exists nothing may answer ARP for the address: the echo's local route must not
            # make the kernel answer it (arp_ignore), so what answers later is the speakers' fast path alone.
            kernel_mac = cluster.resolve(address)
            if kernel_mac is not None:
                raise RuntimeError(f"{kernel_mac} answers ARP for {address} before any speaker owns it")
            probe = cluster.start_probe(address, log_dir / "probe.jsonl")
            cluster.announce(NAMESPACE, SERVICE, address)
            yield Bench(cluster, probe, address)
        finally:
            for host in cluster.lab.nodes:  # the end of the lab is a drain: every speaker hands over, detaches
                kube.kubectl("cordon", host.name, check=False)
            kube.kubectl("delete", "service", SERVICE, "-n", NAMESPACE, check=False)
            kube.kubectl("delete", "ipaddresspools,l2advertisements", "--all", "-n", METALLB_NAMESPACE, check=False)
            delete_pods_now(kube, NAMESPACE)
    delete_pods_now(kube, METALLB_NAMESPACE, SPEAKER_SELECTOR)


# ------------------------------------------------------------------------------------------------ statistics

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarise(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    done = [t for t in trials if "figures" in t]
    outages = [t["figures"]["outage_s"] for t in done]
    moves = [t["figures"]["move_s"] for t in done if t["figures"]["move_s"] is not None]
    stats: dict[str, Any] = {"trials": len(done), "errors": len(trials) - len(done)}
    if outages:
        stats |= {"outage_median_s": statistics.median(outages), "outage_p95_s": percentile(outages, 0.95),
                  "outage_max_s": max(outages)}
    if moves:
        stats |= {"move_median_s": statistics.median(moves), "move_max_s": max(moves)}
    stats["overlap_max_s"] = max((t["figures"]["overlap_max_s"] for t in done), default=0.0)
    stats["false_moves"] = sum(t["false_moves"] for t in done)
    stats["missed_moves"] = sum(t["missed_move"] for t in done)
    stats["unrecovered"] = sum(t["figures"]["unrecovered"] for t in done)
    return stats


def _ratio(base: float | None, value: float | None) -> str:
    """metallb / this (how many times faster), when both are above the probe's resolution."""
    if base is None or value is None or base < 0.02 or value < 0.02:
        return "-"
    return f"{base / value:.2g}x"


def format_table(summary: dict[str, dict[str, dict[str, Any]]], timings: Sequence[str]) -> str:
    header = (f"{'fault':<14}{'timing':<9}{'n':>3} {'outage med':>10} {'p95':>7} {'max':>7} {'move med':>9}"
              f" {'max':>7} {'overlap':>8} {'false':>6} {'missed':>7} {'outage/move vs metallb':>23}")
    lines = [header, "-" * len(header)]

    def sec(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for fault, per_timing in summary.items():
        base = per_timing.get("metallb", {})
        for timing in timings:
            s = per_timing.get(timing)
            if s is None:
                continue
            ratios = (f"{_ratio(base.get('outage_median_s'), s.get('outage_median_s'))} / "
                      f"{_ratio(base.get('move_median_s'), s.get('move_median_s'))}")
            lines.append(
                f"{fault:<14}{timing:<9}{s['trials']:>3} {sec(s.get('outage_median_s')):>10}"
                f" {sec(s.get('outage_p95_s')):>7} {sec(s.get('outage_max_s')):>7} {sec(s.get('move_median_s')):>9}"
                f" {sec(s.get('move_max_s')):>7} {s['overlap_max_s']:>8.2f} {s['false_moves']:>6}"
                f" {s['missed_moves']:>7} {ratios:>23}" + (f"  ({s['errors']} errors)" if s["errors"] else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ plot

def plot(report: dict[str, Any], path: Path) -> str | None:
    """One panel per timing: which node answered (UDP, dots) and whose MAC answered ARP (thin bars) around the
    fault of the first trial of `report['plot_fault']`. Returns why not, when no PNG was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no PNG"
    fault = report["plot_fault"]
    panels = [(timing, trials[0]) for timing, per_fault in report["trials"].items()
              for name, trials in per_fault.items() if name == fault and trials and "timeline" in trials[0]]
    if not panels:
        return f"no {fault} trial to plot"
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels) + 0.6), squeeze=False, sharex=True)
    colors = {f"node{i}": c for i, c in enumerate(("tab:blue", "tab:orange", "tab:green", "tab:red"))}
    for ax, (timing, trial) in zip(axes[:, 0], panels, strict=True):
        rows = sorted(set(trial["timeline"]["udp"]) | set(trial["timeline"]["arp"]))
        for i, node in enumerate(rows):
            xs = trial["timeline"]["arp"].get(node, [])
            ax.scatter(xs, [i - 0.15] * len(xs), s=4, marker="|", color=colors.get(node, "grey"), alpha=0.5)
            xs = trial["timeline"]["udp"].get(node, [])
            ax.scatter(xs, [i + 0.15] * len(xs), s=3, color=colors.get(node, "grey"))
        ax.set_yticks(range(len(rows)), rows)
        ax.axvline(0, color="black", linewidth=0.8)
        if trial.get("held_s"):
            ax.axvline(trial["held_s"], color="black", linewidth=0.8, linestyle="--")
        f = trial["figures"]
        move = "no move" if f["move_s"] is None else f"move {f['move_s']:.2f} s"
        ax.set_title(f"{timing}: {fault} of {trial['target']} at t=0 — outage {f['outage_s']:.2f} s, {move}, "
                     f"overlap {f['overlap_max_s']:.2f} s", fontsize=9)
        ax.set_ylim(-0.6, len(rows) - 0.4)
    axes[-1, 0].set_xlabel("seconds since the fault (dots: UDP answers; bars: ARP replies by that node's MAC)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ------------------------------------------------------------------------------------------------ driver

def soak(bench: Bench, seconds: float, loss: float) -> dict[str, Any]:
    """`loss` on every frame of the LAN and a CPU hog in every node for `seconds`: every move is a false one."""
    owner = bench.steady()
    if owner is None:
        return {"error": f"no steady owner within {STEADY_TIMEOUT_S:.0f} s"}
    with Faults(bench.cluster) as faults:
        first = faults.impair_lan(None, loss=loss)
        for node in bench.nodes:
            faults.cpu_hog(node)
        start = first.started_at
        Bench._sleep_until(start + seconds)
        end = time.monotonic()
    time.sleep(0.1)
    figures = analyse(bench.probe.records(), start, end)
    return {"owner": owner, "seconds": round(end - start, 1), "loss": loss, "figures": _figures_json(figures, start),
            "false_moves": len(figures.moves)}


def _out_of_time(signum: int, frame: object) -> None:
    raise TimeoutError("failover: the run exceeded its time budget (--budget-s)")


def budget(args: argparse.Namespace) -> float:
    """A hard bound on the whole run: per timing a cluster start, per trial the steady wait's worst case."""
    per_timing = 120.0 + args.soak
    for timing in args.ml_timing:
        bound = detection_bound(timing)
        per_trial = bound + max(args.hold_s, args.pause_s, args.link_down_s) + 15.0 + 30.0
        per_timing += len(args.faults) * args.trials * per_trial
    return per_timing + 120.0


def drive(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("failover: needs root (network namespaces, XDP, nftables, cgroups)", file=sys.stderr)
        return 2
    limit = args.budget_s or budget(args)
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(limit))
    started = time.monotonic()
    load_before = os.getloadavg()
    log_root = Path(tempfile.mkdtemp(prefix="metallb-fast-failover-"))
    specs = [f for f in FAULTS if f.name in args.faults]
    report: dict[str, Any] = {
        "trials_per_fault": args.trials, "timings": list(args.ml_timing), "nodes": NODES,
        "liveness_timeout_s": args.liveness_timeout, "probe_interval_s": 0.01,
        "faults": {f.name: {"what": f.what, "target": f.target, "expect": f.expect} for f in specs},
        "parameters": {"pause_s": args.pause_s, "hold_s": args.hold_s, "cpu_fraction": args.cpu_fraction,
                       "loss": args.loss, "delay_ms": args.delay_ms, "link_down_s": args.link_down_s},
        "detection_bound_s": {t: round(detection_bound(t), 2) for t in args.ml_timing},
        "trials": {}, "summary": {}, "soak": {}, "logs": str(log_root), "plot_fault": args.plot_fault,
    }
    try:
        with started_kube() as kube:
            for timing in args.ml_timing:
                bound = detection_bound(timing)
                report["trials"][timing] = {}
                with timing_cluster(kube, timing, log_root / timing, args) as bench:
                    print(f"[{timing}] cluster up; detection bound {bound:.1f} s", file=sys.stderr, flush=True)
                    for spec in specs:
                        trials = report["trials"][timing].setdefault(spec.name, [])
                        for i in range(args.trials):
                            result = bench.trial(spec, args, bound)
                            trials.append(result)
                            f = result.get("figures")
                            line = result.get("error") if f is None else (
                                f"outage {f['outage_s']:.2f} s, move {f['move_s']}, overlap {f['overlap_max_s']:.2f} s,"
                                f" moves {len(f['moves'])}, false {result['false_moves']}")
                            print(f"[{timing}] {spec.name} #{i + 1}: {line}", file=sys.stderr, flush=True)
                    if args.soak:
                        report["soak"][timing] = soak(bench, args.soak, args.soak_loss)
                        print(f"[{timing}] soak: {report['soak'][timing].get('false_moves')} false moves",
                              file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        for timing, per_fault in report["trials"].items():
            for name, trials in per_fault.items():
                report["summary"].setdefault(name, {})[timing] = summarise(trials)
        report["wall_s"] = round(time.monotonic() - started, 1)
        report["load_average_before"], report["load_average_after"] = load_before, os.getloadavg()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(format_table(report["summary"], [t for t in TIMING_ORDER if t in args.ml_timing]
                       + [t for t in args.ml_timing if t not in TIMING_ORDER]))
    for timing, result in report["soak"].items():
        f = result.get("figures")
        if f is None:
            print(f"soak {timing}: {result.get('error')}")
            continue
        print(f"soak {timing}: {result['seconds']} s, {result['loss']:.0%} LAN loss + a CPU hog per node: "
              f"{result['false_moves']} false moves, longest gap {f['longest_gap_s']:.2f} s, "
              f"overlap {f['overlap_max_s']:.2f} s")
    print(f"liveness timeout: {args.liveness_timeout if args.liveness_timeout is not None else 'speaker default'}; "
          f"wall {report['wall_s']} s; load average before/after {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    why_not = plot(report, args.png)
    print(f"wrote {args.json}" + (f", {args.png}" if why_not is None else f" ({why_not})"))
    print(f"logs: {log_root}")
    errors = sum(s["errors"] for per in report["summary"].values() for s in per.values())
    return 0 if errors == 0 else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per fault and timing (default 10)")
    parser.add_argument("--ml-timing", default="fast,metallb,tuned",
                        help=f"comma list of memberlist timings from {', '.join(sorted(TIMINGS))}")
    parser.add_argument("--faults", default=",".join(FAULT_NAMES), help=f"comma list from {', '.join(FAULT_NAMES)}")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                        help="after the trials: --soak-loss on the whole LAN and a CPU hog per node this long")
    parser.add_argument("--soak-loss", type=float, default=0.05)
    parser.add_argument("--liveness-timeout", type=float, default=None,
                        help="the speakers' --liveness-timeout (default: the speaker's own default)")
    parser.add_argument("--pause-s", type=float, default=2.0, help="pause: SIGSTOP this long")
    parser.add_argument("--hold-s", type=float, default=5.0, help="cpu-starve, loss-delay: in effect this long")
    parser.add_argument("--cpu-fraction", type=float, default=0.05, help="cpu-starve: the speaker's CPU share")
    parser.add_argument("--loss", type=float, default=0.05, help="loss-delay: loss per frame and direction")
    parser.add_argument("--delay-ms", type=float, default=30.0, help="loss-delay: delay each way")
    parser.add_argument("--link-down-s", type=float, default=3.0, help="link-flap: the port is down this long")
    parser.add_argument("--plot-fault", default="node-death", help="the fault whose first trial the PNG shows")
    parser.add_argument("--budget-s", type=float, default=0.0, help="hard bound on the run (default: estimated)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--png", type=Path, default=PNG)
    args = parser.parse_args(argv)
    args.ml_timing = [t.strip() for t in args.ml_timing.split(",") if t.strip()]
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if unknown := [t for t in args.ml_timing if t not in TIMINGS]:
        parser.error(f"--ml-timing: unknown {', '.join(unknown)} (choose from {', '.join(sorted(TIMINGS))})")
    if unknown := [f for f in args.faults if f not in FAULT_NAMES]:
        parser.error(f"--faults: unknown {', '.join(unknown)} (choose from {', '.join(FAULT_NAMES)})")
    if not 1 <= args.trials <= 100:
        parser.error(f"--trials {args.trials}: must be 1..100")
    if not 0 <= args.soak <= 3600:
        parser.error(f"--soak {args.soak}: must be 0..3600 seconds")
    if args.plot_fault not in FAULT_NAMES:
        parser.error(f"--plot-fault {args.plot_fault}: not one of {', '.join(FAULT_NAMES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return drive(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
