"""Scale benchmark: the speaker and the controller with 1,000 and 10,000 LoadBalancer Services and 500 Nodes.

  sudo .venv/bin/python bench/scale.py [--quick] [--services 1000,10000] [--nodes 500] [--churn-s 60] [--events 50]
                                       [--bulk-events 200]
                                       [--baseline-ref REF] [--json bench/results/scale.json]

One real kube-apiserver (KubeEnv), the deploy/ ServiceAccounts' permissions for both programs, one lab node whose
speaker (--backend xdp, else ring) is measured, and 499 more Nodes that only exist as objects (Ready, so they are
candidates of every election). Every bulk Service is IPv6 (2001:db8:ff00::/112) with one EndpointSlice of three
ready endpoints on random Nodes, as a real Deployment behind it would have; the speaker thus elects over 500 Nodes
for every Service and wins about one in 500.

At each scale point (Services present), in this order:
- speaker CPU per Service event: `--events` Service creations (each an ARP sample, below), then `--bulk-events`
  creations of bulk Services, EndpointSlice changes of bulk Services and deletions, one at a time; CPU = the run
  time of the speaker's threads (the scheduler's, in ns) over the phase minus its idle rate (measured just before)
  times the phase's duration, divided by the number of events;
- status -> first ARP reply: each sample Service is IPv4, externalTrafficPolicy Local, with its EndpointSlice on
  the lab node (created first), so this speaker wins it; a client in the lab probes its address every 2 ms; the
  time from the status write (seen by a watch) to the first reply, and from the POST;
- EndpointSlice churn: `--churn-rate` changes/s (50) for `--churn-s` seconds: speaker CPU % of one core;
- a full re-plan: a Node added (every Service re-elected): speaker CPU seconds until it is idle again;
- memory: VmRSS and RssAnon of the speaker and the controller.
Then the controller burst: 1,000 Services POSTed by 8 threads, creation -> status (throughput, median, p99), by
this tree's controller and then, in the same run and on the same API server, by the controller of `--baseline-ref`
(a git worktree of that commit; default: the commit before the pipelined writes), so the ratio is like for like.
Prints a table and writes JSON, with the ratio 10,000 vs 1,000 of every per-event figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, path)

import k8s_control_plane as cp  # noqa: E402

from metallb_fast.k8s.client import KubeClient  # noqa: E402
from metallb_fast.lab import Lab  # noqa: E402
from metallb_fast.lab.loopback_proxy import LoopbackProxy  # noqa: E402
from metallb_fast.speaker.loop import endpoint_slice_resource  # noqa: E402
from metallb_fast.testing.kubeenv import KubeEnv  # noqa: E402

RESULTS = BENCH / "results" / "scale.json"
NAMESPACE = cp.NAMESPACE
SLICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
DEFAULT_BASELINE = "a66e2e2"  # main before issue 10: one write at a time on the decision thread
EVENT_KINDS = {  # per-event figures: result key -> table label
    "create": "ms / create, announced here*",
    "create_other": "ms / create, announced elsewhere",
    "endpoint_change": "ms / EndpointSlice change",
    "delete": "ms / Service delete",
}
TARGETS = {
    "speaker_cpu_ms_per_event": 2.0,
    "ratio_10k_vs_1k": 1.5,
    "status_to_arp_p99_ms": 30.0,
    "churn_cpu_percent": 10.0,
    "speaker_rss_anon_mib": 64.0,
    "controller_rss_anon_mib": 64.0,
    "backlog_throughput_ratio": 2.0,
}


@dataclass(frozen=True)
class Plan:
    scales: tuple[int, ...] = (1_000, 10_000)
    nodes: int = 500
    events: int = 50  # announced creations (ARP samples) per scale point: the lan pool's spare addresses bound it
    bulk_events: int = 200  # per kind of the other events (creations elsewhere, slice changes, deletions)
    churn_rate: float = 50.0
    churn_s: float = 60.0
    burst: int = 1_000
    create_threads: int = 8
    baseline_ref: str = DEFAULT_BASELINE
    wait_timeout_s: float = 600.0


QUICK = Plan(scales=(200, 1_000), nodes=50, events=10, bulk_events=10, churn_s=5.0, burst=200)


# ---------------------------------------------------------------------------------------------- objects


def sample_service(name: str, address: IPv4Address) -> dict[str, Any]:
    body = cp.arp_service(name, address)
    body["spec"]["externalTrafficPolicy"] = "Local"
    body["spec"].pop("selector", None)  # its EndpointSlice is made by hand, as for the bulk ones
    return body


SLICES_VERSION = "v1"  # set by run(): v1beta1 on API servers before 1.21


def endpoint_slice(service: str, nodes: Sequence[str], family: str, generation: int = 0) -> dict[str, Any]:
    base = "2001:db8:fe00::" if family == "IPv6" else "198.51.100."
    # v1beta1 names the node in topology (nodeName is v1's), as the speaker reads either
    where = "nodeName" if SLICES_VERSION == "v1" else "topology"
    endpoints = [
        {
            "addresses": [f"{base}{(i + generation) % 250 + 1}"],
            "conditions": {"ready": True},
            where: node if where == "nodeName" else {"kubernetes.io/hostname": node},
        }
        for i, node in enumerate(nodes)
    ]
    return {
        "apiVersion": f"discovery.k8s.io/{SLICES_VERSION}",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-slice",
            "namespace": NAMESPACE,
            # a managed-by of our own: kube-controller-manager's EndpointSlice controller leaves such slices alone
            "labels": {SLICE_LABEL: service, MANAGED_BY: "bench.metallb-fast"},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"port": 80, "protocol": "TCP"}],
    }


def slices_path() -> str:
    return f"/apis/discovery.k8s.io/{SLICES_VERSION}/namespaces/{NAMESPACE}/endpointslices"


def services_path() -> str:
    return f"/api/v1/namespaces/{NAMESPACE}/services"


def parallel(action: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(action, items))


# ---------------------------------------------------------------------------------------------- measuring


class CpuMeter:
    """CPU seconds of one process, with its idle rate subtracted from a phase's figure."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle_per_s = 0.0

    def seconds(self) -> float:
        """The threads' run time from the scheduler (/proc/PID/task/*/schedstat, in ns): the 10 ms ticks of
        utime+stime would be a fifth of a millisecond per event at 50 events. The speaker's threads live as long
        as it does, so none of their time leaves the sum."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
        return total / 1e9

    def measure_idle(self, duration: float = 3.0) -> float:
        start, wall = self.seconds(), time.monotonic()
        time.sleep(duration)
        self.idle_per_s = (self.seconds() - start) / (time.monotonic() - wall)
        return self.idle_per_s

    @contextlib.contextmanager
    def phase(self, into: dict[str, Any]) -> Iterator[None]:
        start, wall = self.seconds(), time.monotonic()
        yield
        duration = time.monotonic() - wall
        raw = self.seconds() - start
        into.update(cpu_s=raw, wall_s=duration, cpu_less_idle_s=max(0.0, raw - self.idle_per_s * duration))

    def wait_idle(self, quiet_s: float = 1.0, timeout: float = 300.0) -> float:
        """Until the process has used no more than its idle rate for `quiet_s`; returns when it began to be."""
        deadline = time.monotonic() + timeout
        last = self.seconds()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now_cpu = self.seconds()
            if now_cpu - last > self.idle_per_s * 0.1 + 0.02:
                quiet_since = time.monotonic()
            last = now_cpu
            if time.monotonic() - quiet_since >= quiet_s:
                return quiet_since
        raise TimeoutError(f"pid {self.pid} did not become idle within {timeout:.0f} s")


def per_event_ms(phase: dict[str, Any], events: int) -> float:
    return phase["cpu_less_idle_s"] * 1e3 / events


class Bench:
    def __init__(self, plan: Plan, kube: KubeEnv, client: KubeClient, lab: Lab, logdir: Path) -> None:
        self.plan = plan
        self.kube = kube
        self.client = client
        self.lab = lab
        self.logdir = logdir
        self.node = lab.nodes[0].name
        self.fake_nodes = [f"bench-node-{i:04d}" for i in range(plan.nodes - 1)]
        self.all_nodes = [self.node, *self.fake_nodes]
        self.bulk = 0  # bulk Services created so far
        self.rng = random.Random(10)
        self.programs: list[cp.Program] = []

    # ---- filling
    def fill_to(self, total: int) -> dict[str, Any]:
        """Bulk Services (with their slices) until `total` Services exist in the bench namespace."""
        names = [f"bulk-{i:05d}" for i in range(self.bulk, total)]
        if not names:
            return {"created": 0}
        watcher = cp.Watcher(self.kube, self.client, "bulk-", len(names), self.plan.wait_timeout_s)
        started = time.monotonic()
        parallel(self.create_bulk, names, self.plan.create_threads)
        seen = watcher.result()
        if len(seen) != len(names):
            raise RuntimeError(f"fill: {len(seen)}/{len(names)} Services got an address")
        self.bulk += len(names)
        return {"created": len(names), "wall_s": time.monotonic() - started}

    # ---- one scale point
    def scale_point(self, speaker: cp.Program, controller: cp.Program, probe: cp.ArpProbe) -> dict[str, Any]:
        meter = CpuMeter(speaker.pid)
        meter.wait_idle()
        result: dict[str, Any] = {"services": self.bulk, "idle_cpu_percent": meter.measure_idle() * 100}
        events = self.plan.events

        create: dict[str, Any] = {}
        with meter.phase(create):
            rows = self.create_samples(f"arp-{self.bulk}-", events, probe)
        answered = [r for r in rows if r["answered_at"] is not None]
        result["create"] = {
            **create,
            "ms_per_event": per_event_ms(create, events),
            "answered": len(answered),
            "wrong_mac": sum(1 for r in answered if r["mac"] != cp.format_mac(self.lab.nodes[0].mac("eth0"))),
            "post_to_arp": cp.summary([r["answered_at"] - r["posted"] for r in answered]),
            "status_to_arp": cp.summary([r["answered_at"] - r["status_at"] for r in answered if r["status_at"]]),
        }
        meter.wait_idle()

        events = self.plan.bulk_events
        quiet: dict[str, Any] = {}  # Services this node does not win: 499 in 500 here, the common case
        with meter.phase(quiet):
            for _ in range(events):
                self.create_bulk(f"bulk-{self.bulk:05d}")
                self.bulk += 1
                time.sleep(0.05)
            meter.wait_idle(quiet_s=0.5)
        result["create_other"] = {**quiet, "events": events, "ms_per_event": per_event_ms(quiet, events)}

        endpoint: dict[str, Any] = {}
        targets = self.rng.sample(range(self.bulk), events)
        with meter.phase(endpoint):
            for i, index in enumerate(targets):
                self.change_slice(index, generation=i + 1)
                time.sleep(0.05)
            meter.wait_idle(quiet_s=0.5)
        result["endpoint_change"] = {**endpoint, "events": events, "ms_per_event": per_event_ms(endpoint, events)}

        delete: dict[str, Any] = {}
        victims = [f"bulk-{i:05d}" for i in self.rng.sample(range(self.bulk), events)]
        with meter.phase(delete):
            for name in victims:
                self.client.request("DELETE", f"{services_path()}/{name}")
                time.sleep(0.05)
            meter.wait_idle(quiet_s=0.5)
        result["delete"] = {**delete, "events": events, "ms_per_event": per_event_ms(delete, events)}
        for name in victims:  # back to the same count, so the next scale point starts where it says
            self.client.create(services_path(), cp.bulk_service(name))
        self.bulk -= events  # the quiet creations above: the next fill counts from here
        for i in range(events):
            self.client.request("DELETE", f"{services_path()}/bulk-{self.bulk + i:05d}")
            self.client.request("DELETE", f"{slices_path()}/bulk-{self.bulk + i:05d}-slice")
        meter.wait_idle()

        churn: dict[str, Any] = {}
        changes = int(self.plan.churn_rate * self.plan.churn_s)
        with meter.phase(churn):
            start = time.monotonic()
            for i in range(changes):
                due = start + i / self.plan.churn_rate
                time.sleep(max(0.0, due - time.monotonic()))
                self.change_slice(self.rng.randrange(self.bulk), generation=1000 + i)
        result["churn"] = {
            **churn,
            "changes": changes,
            "rate_per_s": changes / churn["wall_s"],
            "cpu_percent": churn["cpu_s"] / churn["wall_s"] * 100,
        }
        meter.wait_idle()

        replan: dict[str, Any] = {}
        name = f"bench-extra-{result['services']}"
        with meter.phase(replan):
            added_at = time.monotonic()
            self.kube.create_node(name)
            idle_from = meter.wait_idle(quiet_s=1.0)
        result["full_replan"] = {**replan, "until_idle_s": idle_from - added_at}
        self.all_nodes.append(name)

        result["memory_kib"] = {"speaker": speaker.memory(), "controller": controller.memory()}
        self.remove_samples(f"arp-{result['services']}-", self.plan.events)
        return result

    def create_bulk(self, name: str) -> None:
        self.client.create(slices_path(), endpoint_slice(name, self.rng.sample(self.all_nodes, 3), "IPv6"))
        self.client.create(services_path(), cp.bulk_service(name))

    def change_slice(self, index: int, generation: int) -> None:
        name = f"bulk-{index:05d}"
        nodes = self.rng.sample(self.all_nodes, 3)
        body = endpoint_slice(name, nodes, "IPv6", generation)
        self.client.merge_patch(f"{slices_path()}/{name}-slice", {"endpoints": body["endpoints"]})

    def create_samples(self, prefix: str, count: int, probe: cp.ArpProbe) -> list[dict[str, Any]]:
        """`count` sample Services, one at a time, each probed until answered; the lan pool holds `count`
        addresses, so the samples of a scale point are deleted (remove_samples) before the next one."""
        names = [f"{prefix}{i:04d}" for i in range(count)]
        watcher = cp.Watcher(self.kube, self.client, prefix, len(names), self.plan.wait_timeout_s)
        rows = []
        for i, name in enumerate(names):
            address = self.lab.vip_v4(i)
            self.client.create(slices_path(), endpoint_slice(name, [self.node], "IPv4"))
            probe.drain()
            self.client.create(services_path(), sample_service(name, address))
            posted = time.monotonic()
            outcome = probe.until_answered(address, 0.002, 15.0)
            rows.append({"name": name, "posted": posted, **outcome})
            time.sleep(0.05)
        seen = watcher.result()
        for row in rows:
            row["status_at"] = seen[row["name"]][0] if row["name"] in seen else None
        return rows

    def remove_samples(self, prefix: str, count: int) -> None:
        for i in range(count):
            self.client.request("DELETE", f"{services_path()}/{prefix}{i:04d}")
            self.client.request("DELETE", f"{slices_path()}/{prefix}{i:04d}-slice")

    # ---- controller burst
    def controller_runs(self, label: str, start: Callable[[str], cp.Program]) -> dict[str, Any]:
        """Two measures of one controller: a burst of creations it keeps up with as they are POSTed (paced by the
        API server: creation -> status latency), and a backlog of as many Services created while it was stopped
        (paced by the controller alone: how fast it drains them, first status to last)."""
        program = start(f"controller-{label}")
        CpuMeter(program.pid).wait_idle(quiet_s=2.0, timeout=self.plan.wait_timeout_s)  # its initial sync
        names = [f"burst-{label}-{i:05d}" for i in range(self.plan.burst)]
        watcher = cp.Watcher(self.kube, self.client, f"burst-{label}-", len(names), self.plan.wait_timeout_s)
        posted = cp.create_services(self.client, [cp.bulk_service(n) for n in names], self.plan.create_threads)
        burst = cp.status_latency(posted, watcher.result())
        memory = program.memory()
        program.stop()
        names = [f"backlog-{label}-{i:05d}" for i in range(self.plan.burst)]
        cp.create_services(self.client, [cp.bulk_service(n) for n in names], self.plan.create_threads)
        watcher = cp.Watcher(self.kube, self.client, f"backlog-{label}-", len(names), self.plan.wait_timeout_s)
        started = time.monotonic()
        program = start(f"controller-{label}-backlog")
        seen = watcher.result()
        program.stop()
        times = sorted(at for at, _ in seen.values())
        drain_s = times[-1] - times[0] if len(times) > 1 else 0.0
        backlog = {
            "services": len(names),
            "assigned": len(seen),
            "start_to_last_s": times[-1] - started if times else None,
            "first_to_last_s": drain_s,
            "throughput_per_s": (len(times) - 1) / drain_s if drain_s else None,
        }
        return {"burst": burst, "backlog": backlog, "memory_kib": memory}


def baseline_tree(ref: str, into: Path) -> Path:
    """A worktree of `ref` (its controller is the baseline); removed by the caller's ExitStack."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), ref], check=True, capture_output=True
    )
    return into


def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise PermissionError("the scale benchmark needs root (network namespaces, XDP)")
    result: dict[str, Any] = {"plan": asdict(plan), "loadavg_before": os.getloadavg(), "points": []}
    with contextlib.ExitStack() as stack:
        logdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbf-bench-scale-")))
        kube = KubeEnv().start()
        stack.callback(kube.stop)
        kube.apply_crds(cp.CRDS)
        kube.apply_deploy_rbac(ROOT / "deploy")
        client = KubeClient.from_kubeconfig(str(kube.kubeconfig_path("admin")))
        stack.callback(client.close)
        global SLICES_VERSION
        SLICES_VERSION = endpoint_slice_resource(client).group_version_path.rsplit("/", 1)[1]
        client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        lab = stack.enter_context(Lab(nodes=1, clients=1))
        bench = Bench(plan, kube, client, lab, logdir)
        stack.callback(lambda: [p.stop() for p in bench.programs])
        log(f"[setup] {plan.nodes} Nodes")
        kube.create_node(bench.node, internal_ip=str(lab.nodes[0].ipv4("eth0")))
        parallel(lambda n: kube.create_node(n), bench.fake_nodes, plan.create_threads)
        stack.enter_context(LoopbackProxy([lab.nodes[0].netns], port=kube.port, target_port=kube.port))
        if plan.events > 50:
            raise ValueError("at most 50 sample Services per scale point: the lab LAN has 56 spare addresses")
        for path, body in cp.config_objects(lab.vip_v4(0), lab.vip_v4(plan.events - 1)):
            client.create(path, body)
        controller = cp.Program("controller", cp.controller_argv(kube), logdir)
        bench.programs.append(controller)
        speaker, backend = cp.start_speaker(kube, lab, bench.node, logdir, bench.programs)
        result["speaker_backend"] = backend
        probe = cp.ArpProbe(lab)
        stack.callback(probe.close)
        for total in plan.scales:
            log(f"[fill to {total}]")
            fill = bench.fill_to(total)
            log(f"[measure at {total}] (fill: {fill})")
            point = bench.scale_point(speaker, controller, probe)
            point["fill"] = fill
            result["points"].append(point)
            log(
                "  "
                + json.dumps({k: point[k] for k in ("services", "create", "endpoint_change", "delete")}, default=str)[
                    :400
                ]
            )
        controller.stop()  # from here on each controller is started by controller_runs
        tree = baseline_tree(plan.baseline_ref, logdir / "baseline")
        stack.callback(
            lambda: subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False, capture_output=True
            )
        )
        # the baseline runs from its own tree: same interpreter and venv, its package first on the path
        baseline_env = {"env": {**os.environ, "PYTHONPATH": str(tree)}, "cwd": tree}
        for label, options in (("current", {}), ("baseline", baseline_env)):
            log(f"[controller {label}: burst and backlog]")

            def start(name: str, options: dict[str, Any] = options) -> cp.Program:
                program = cp.Program(name, cp.controller_argv(kube), logdir, **options)
                bench.programs.append(program)
                return program

            result[f"controller_{label}"] = bench.controller_runs(label, start)
        result["exit_codes"] = {p.name: p.stop() for p in bench.programs}
    result["loadavg_after"] = os.getloadavg()
    result["summary"] = summarize(result)
    return result


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    points = result["points"]
    first, last = points[0], points[-1]
    rows: dict[str, Any] = {}
    for kind in EVENT_KINDS:
        rows[f"{kind}_ms_per_event"] = {str(p["services"]): p[kind]["ms_per_event"] for p in points}
        base = first[kind]["ms_per_event"]
        rows[f"{kind}_ratio"] = last[kind]["ms_per_event"] / base if base > 0 else None
    for key in ("post_to_arp", "status_to_arp"):
        rows[key] = {str(p["services"]): p["create"][key] for p in points}
    ratio_keys = ("median_ms", "p99_ms")
    for key in ("post_to_arp", "status_to_arp"):
        for stat in ratio_keys:
            a, b = first["create"][key].get(stat), last["create"][key].get(stat)
            rows[f"{key}_{stat}_ratio"] = b / a if a else None
    rows["churn_cpu_percent"] = {str(p["services"]): p["churn"]["cpu_percent"] for p in points}
    rows["full_replan_cpu_s"] = {str(p["services"]): p["full_replan"]["cpu_less_idle_s"] for p in points}
    rows["memory_mib"] = {
        str(p["services"]): {who: {k: v / 1024 for k, v in mem.items()} for who, mem in p["memory_kib"].items()}
        for p in points
    }
    current, baseline = result["controller_current"], result["controller_baseline"]
    drained = (current["backlog"]["throughput_per_s"], baseline["backlog"]["throughput_per_s"])
    rows["burst"] = {
        "current_per_s": current["burst"]["throughput_per_s"],
        "baseline_per_s": baseline["burst"]["throughput_per_s"],
        "current_latency": current["burst"]["latency"],
        "baseline_latency": baseline["burst"]["latency"],
        "current_backlog_per_s": drained[0],
        "baseline_backlog_per_s": drained[1],
        "ratio": drained[0] / drained[1] if drained[0] and drained[1] else None,
    }
    worst_event = max(last[k]["ms_per_event"] for k in EVENT_KINDS)
    worst_ratio = max(r for r in (rows[f"{k}_ratio"] for k in EVENT_KINDS) if r)
    rows["targets"] = {
        "speaker_cpu_ms_per_event": (worst_event, worst_event <= TARGETS["speaker_cpu_ms_per_event"]),
        "ratio_10k_vs_1k": (worst_ratio, worst_ratio <= TARGETS["ratio_10k_vs_1k"]),
        "status_to_arp_p99_ms": (
            last["create"]["status_to_arp"].get("p99_ms"),
            (last["create"]["status_to_arp"].get("p99_ms") or 1e9) <= TARGETS["status_to_arp_p99_ms"],
        ),
        "churn_cpu_percent": (
            last["churn"]["cpu_percent"],
            last["churn"]["cpu_percent"] <= TARGETS["churn_cpu_percent"],
        ),
        "speaker_rss_anon_mib": (
            last["memory_kib"]["speaker"]["RssAnon"] / 1024,
            last["memory_kib"]["speaker"]["RssAnon"] / 1024 <= TARGETS["speaker_rss_anon_mib"],
        ),
        "controller_rss_anon_mib": (
            last["memory_kib"]["controller"]["RssAnon"] / 1024,
            last["memory_kib"]["controller"]["RssAnon"] / 1024 <= TARGETS["controller_rss_anon_mib"],
        ),
        "backlog_throughput_ratio": (
            rows["burst"]["ratio"],
            (rows["burst"]["ratio"] or 0) >= TARGETS["backlog_throughput_ratio"],
        ),
    }
    return rows


def format_table(result: dict[str, Any]) -> str:
    points, summary = result["points"], result["summary"]
    scales = "".join(f"{p['services']:>12,}" for p in points)
    header = f"{'speaker CPU per event, or figure':<36}{scales}{'ratio':>8}"
    lines = [header]

    def row(label: str, values: list[float | None], ratio: float | None) -> None:
        cells = "".join(f"{v:>12.2f}" if v is not None else f"{'-':>12}" for v in values)
        lines.append(f"{label:<36}{cells}{ratio:>8.2f}" if ratio is not None else f"{label:<36}{cells}{'-':>8}")

    for kind, label in EVENT_KINDS.items():
        row(label, [p[kind]["ms_per_event"] for p in points], summary[f"{kind}_ratio"])
    for key, label in (("status_to_arp", "status -> first ARP reply"), ("post_to_arp", "POST -> first ARP reply")):
        for stat in ("median_ms", "p99_ms"):
            row(f"{label} {stat[:-3]} ms", [p["create"][key].get(stat) for p in points], summary[f"{key}_{stat}_ratio"])
    row("EndpointSlice churn: speaker CPU %", [p["churn"]["cpu_percent"] for p in points], None)
    row("full re-plan (Node added): CPU s", [p["full_replan"]["cpu_less_idle_s"] for p in points], None)
    row("full re-plan: until idle s", [p["full_replan"]["until_idle_s"] for p in points], None)
    for who in ("speaker", "controller"):
        for field in ("VmRSS", "RssAnon"):
            row(f"{who} {field} MiB", [p["memory_kib"][who][field] / 1024 for p in points], None)
    burst = summary["burst"]
    lines.append("")
    lines.append(
        f"controller backlog of {result['plan']['burst']} (created while it was stopped): this tree drains "
        f"{burst['current_backlog_per_s'] or 0:.0f} Services/s, baseline {result['plan']['baseline_ref']} "
        f"{burst['baseline_backlog_per_s'] or 0:.0f}/s -> x{burst['ratio'] or 0:.2f}"
    )
    lines.append(
        f"controller burst of {result['plan']['burst']} as POSTed: this tree {burst['current_per_s']:.0f} Services/s "
        f"(median {burst['current_latency'].get('median_ms', 0):.0f} ms, p99 "
        f"{burst['current_latency'].get('p99_ms', 0):.0f} ms); baseline "
        f"{burst['baseline_per_s']:.0f}/s (median {burst['baseline_latency'].get('median_ms', 0):.0f} ms): "
        "both as fast as the API server takes the POSTs"
    )
    lines.append(
        "* with its API writes: ServiceL2Status (look-up of other nodes' objects, create, status) and the "
        "nodeAssigned Event"
    )
    lines.append("")
    for name, (value, met) in summary["targets"].items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"target {name:<28} <= / >= {TARGETS[name]:<8} measured {shown:<10} {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 Services, 50 Nodes: a smoke run")
    parser.add_argument("--services", help="comma list of scale points (default 1000,10000)")
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--bulk-events", type=int)
    parser.add_argument("--churn-s", type=float)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE)
    parser.add_argument("--json", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else Plan()
    overrides: dict[str, Any] = {"baseline_ref": args.baseline_ref}
    if args.services:
        overrides["scales"] = tuple(int(s) for s in args.services.split(","))
    for name in ("nodes", "events", "bulk_events", "churn_s", "burst"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    plan = Plan(**{**asdict(plan), **overrides})
    result = run(plan)
    print(format_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
