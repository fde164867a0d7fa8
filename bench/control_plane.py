"""Control-plane benchmark: the allocator alone, then the real programs against a real kube-apiserver.

  sudo .venv/bin/python bench/control_plane.py [--quick] [--skip-k8s] [--services N] [--churn N] [--out PATH]

Allocator part:

- 10,000 IPv4 Services from a /16 pool, 10,000 IPv6 Services from a /64 pool, 10,000 dual-stack Services from a
  pool holding both, each through the controller's full per-Service decision (decide());
- 1,000 deletes and re-creates among them;
- peak memory (tracemalloc) of a pool of /24, /8 and IPv6 /64 holding the same 200 Services, in one run, with the
  ratio to the /24 (the pool is never materialised, so the ratio stays near 1).
Kubernetes part (k8s_control_plane.py, root): creation -> status latency over 1,000 Services, creation -> first
ARP reply through the speaker's fast path, initial sync of 5,000 Services by a restarted controller, and the
programs' resident memory. `--quick` shrinks both parts to a smoke run.
Prints tables and writes JSON (default bench/results/control_plane.json). Timing never gates a test.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path
from typing import Any

from metallb_fast.allocator import Allocator
from metallb_fast.config.model import AddressRange, Config, Pool
from metallb_fast.controller.decide import decide, forget
from metallb_fast.resources import Service, ServicePort

RESULTS = Path(__file__).resolve().parent / "results" / "control_plane.json"


def cidr(text: str) -> AddressRange:
    net = ipaddress.ip_network(text)
    return AddressRange(net[0], net[-1], text, net.prefixlen)


def config_of(name: str, *cidrs: str) -> Config:
    return Config(pools=(Pool(name, tuple(cidr(c) for c in cidrs)),))


def service(i: int, family: str) -> Service:
    cluster = {
        "ipv4": (f"10.96.{i // 250}.{i % 250 + 1}",),
        "ipv6": (f"fd00:10:96::{i:x}",),
        "dual": (f"10.96.{i // 250}.{i % 250 + 1}", f"fd00:10:96::{i:x}"),
    }[family]
    return Service(
        namespace=f"ns{i % 50}",
        name=f"svc-{family}-{i}",
        type="LoadBalancer",
        cluster_ips=cluster,
        ip_family_policy="RequireDualStack" if family == "dual" else "SingleStack",
        ports=(ServicePort("TCP", 80), ServicePort("TCP", 443)),
        selector=(("app", f"a{i}"),),
    )


def assign_all(allocator: Allocator, services: list[Service]) -> float:
    start = time.perf_counter()
    for svc in services:
        decision = decide(allocator, svc)
        if not decision.ingress_ips:
            raise RuntimeError(f"{svc.key} got no address: {decision.events}")
    return time.perf_counter() - start


def run_assignment(count: int, family: str, cfg: Config) -> dict[str, Any]:
    allocator = Allocator()
    allocator.set_config(cfg)
    services = [service(i, family) for i in range(count)]
    gc.collect()
    seconds = assign_all(allocator, services)
    return {"family": family, "services": count, "seconds": seconds, "per_service_us": seconds / count * 1e6}


def run_churn(count: int, churn: int) -> dict[str, Any]:
    """Fill a /16, then delete every tenth Service and create a new one in its place, `churn` times."""
    allocator = Allocator()
    allocator.set_config(config_of("v4", "198.18.0.0/16"))
    services = [service(i, "ipv4") for i in range(count)]
    assign_all(allocator, services)
    victims = [services[(i * 10) % count] for i in range(churn)]
    freed = {allocator.ips_of(v.key)[0] for v in victims}
    start = time.perf_counter()
    for svc in victims:
        forget(allocator, svc.key)
    deleted = time.perf_counter() - start
    fresh = [service(count + i, "ipv4") for i in range(churn)]
    start = time.perf_counter()
    assign_all(allocator, fresh)
    created = time.perf_counter() - start
    reused = sum(1 for s in fresh if allocator.ips_of(s.key)[0] in freed)
    return {
        "deletes": churn,
        "delete_seconds": deleted,
        "creates": churn,
        "create_seconds": created,
        "per_create_us": created / churn * 1e6,
        "recreated_into_freed": reused,
    }


def peak_memory(cfg: Config, family: str, count: int) -> int:
    gc.collect()
    tracemalloc.start()
    allocator = Allocator()
    allocator.set_config(cfg)
    for i in range(count):
        decide(allocator, service(i, family))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def _row(label: str, stats: dict[str, float], extra: str = "") -> str:
    if not stats:
        return f"{label:<38}{'-':>6}"
    return (f"{label:<38}{stats['n']:>6}{stats['median_ms']:>10.1f}{stats['p99_ms']:>10.1f}{stats['max_ms']:>10.1f}"
            f"  {extra}")


def print_kubernetes(k: dict[str, Any]) -> None:
    status, arp, sync, mem = k["status_latency"], k["arp_answer"], k["initial_sync"], k["memory_kib"]
    print(f"\n{'latency (ms)':<38}{'n':>6}{'median':>10}{'p99':>10}{'max':>10}")
    print(_row("create -> status (burst)", status["latency"],
               f"{status['throughput_per_s']:.0f} Services/s, POSTs {status['create_rate_per_s']:.0f}/s"))
    print(_row("create -> first ARP reply", arp["answer"], f"backend {arp['backend']} ({arp['xdp_attached']})"))
    print(_row("  create -> status (one at a time)", arp["status"]))
    print(_row("  status -> first ARP reply", arp["status_to_answer"]))
    print(_row("  create -> any ARP (incl. gratuitous)", arp["first_arp_any"]))
    print(f"answered {arp['answered']}/{arp['samples']}, wrong MAC {arp['wrong_mac']}; "
          f"fill to {sync['services']} Services at {k['fill']['throughput_per_s']:.0f}/s")
    print(f"\ninitial sync of {sync['services']} Services: all processed "
          f"{sync['seconds_to_all_processed']:.2f} s after start (metrics up {sync['seconds_to_metrics_up']:.2f} s, "
          f"first {sync['seconds_to_first_processed']:.2f} s); "
          f"addresses changed {sync['changed_addresses']}, Services written {sync['written_services']}, "
          f"new events {sync['new_events']}")
    print(f"\n{'memory (MiB)':<34}{'VmRSS':>8}{'VmHWM':>8}{'RssAnon':>9}{'RssFile':>9}   "
          f"({mem['services']} Services, speaker announcing {mem['speaker_announcing']})")
    for key in ("controller_after_assigning", "controller_restarted_after_sync", "controller_restarted_end",
                "speaker_end"):
        row = mem[key]
        print(f"{key:<34}{row['VmRSS'] / 1024:>8.1f}{row['VmHWM'] / 1024:>8.1f}{row['RssAnon'] / 1024:>9.1f}"
              f"{row['RssFile'] / 1024:>9.1f}")
    print(f"\nphases (s): {k['phases_s']}; total {k['total_s']:.0f} s; cleanup {k['cleanup']}")
    for name in ("status_latency", "fill", "arp_answer"):
        print(f"CPU s in {name}: {k['phase_cpu_s'].get(name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=None, help="allocator part (default 10,000; quick 2,000)")
    parser.add_argument("--churn", type=int, default=None, help="allocator part (default 1,000; quick 200)")
    parser.add_argument("--memory-services", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a small smoke run of every part")
    parser.add_argument("--skip-k8s", action="store_true", help="only the allocator part (no root needed)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.services = args.services or (2_000 if args.quick else 10_000)
    args.churn = args.churn or (200 if args.quick else 1_000)

    assignment = [
        run_assignment(args.services, "ipv4", config_of("v4-16", "198.18.0.0/16")),
        run_assignment(args.services, "ipv6", config_of("v6-64", "2001:db8:1::/64")),
        run_assignment(args.services, "dual", config_of("dual", "198.18.0.0/16", "2001:db8:1::/64")),
    ]
    churn = run_churn(args.services, args.churn)
    pools = [
        ("ipv4 /24", config_of("p24", "198.51.100.0/24"), "ipv4"),
        ("ipv4 /8", config_of("p8", "10.0.0.0/8"), "ipv4"),
        ("ipv6 /64", config_of("p64", "2001:db8:2::/64"), "ipv6"),
    ]
    memory = []
    for label, cfg, family in pools:
        peak = peak_memory(cfg, family, args.memory_services)
        memory.append({"pool": label, "services": args.memory_services, "peak_bytes": peak})
    base = memory[0]["peak_bytes"]
    for row in memory:
        row["ratio_to_24"] = row["peak_bytes"] / base

    print(f"{'assignment':<12}{'services':>10}{'seconds':>10}{'us/svc':>10}")
    for row in assignment:
        print(f"{row['family']:<12}{row['services']:>10}{row['seconds']:>10.3f}{row['per_service_us']:>10.1f}")
    print()
    print(
        f"churn: {churn['deletes']} deletes in {churn['delete_seconds'] * 1e3:.1f} ms, "
        f"{churn['creates']} creates in {churn['create_seconds'] * 1e3:.1f} ms "
        f"({churn['per_create_us']:.1f} us each)"
    )
    print()
    print(f"{'pool':<12}{'services':>10}{'peak KiB':>12}{'vs /24':>8}")
    for row in memory:
        print(f"{row['pool']:<12}{row['services']:>10}{row['peak_bytes'] / 1024:>12.1f}{row['ratio_to_24']:>8.2f}")

    document: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cpus": os.cpu_count(),
                    "loadavg_before": os.getloadavg()},
        "quick": args.quick,
        "assignment": assignment,
        "churn": churn,
        "memory": memory,
        "target": {"services": 10_000, "seconds": 1.0},
    }
    if not args.skip_k8s:
        import k8s_control_plane  # beside this file; imported late: it needs root, the lab and the kube binaries

        plan = k8s_control_plane.QUICK if args.quick else k8s_control_plane.Plan()
        print("\nKubernetes part (real kube-apiserver, controller and speaker processes)")
        kubernetes = k8s_control_plane.run(plan)
        document["kubernetes"] = kubernetes
        print_kubernetes(kubernetes)
    document["machine"]["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
