"""`metallb-fast demo --cluster`: the examples applied to a whole cluster on this machine, proven from a client.

For each example manifest: apply it with kubectl, give every Service a ready Pod on each node, wait for the
controller's addresses, ask `plan` which node should answer each address, and resolve the address from the
client with the real arping / ndisc6. A row per address says whether the MAC the client learned is that node's.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from metallb_fast.lab.cluster import ClusterLab, started_kube
from metallb_fast.lab.waiting import wait_for
from metallb_fast.texttable import render_table

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DEMO_EXAMPLES = ("ipv4.yaml", "ipv6.yaml", "dual-stack.yaml", "sharing.yaml")
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ClusterRow:
    example: str
    service: str
    address: str
    node: str | None  # the announcing node `plan` names; None = nobody should answer
    expected_mac: str | None
    seen_mac: str | None

    @property
    def ok(self) -> bool:
        return self.seen_mac == self.expected_mac


def services_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") == "Service"]


def run_cluster_demo(backend: str, log: TextIO) -> list[ClusterRow]:
    rows: list[ClusterRow] = []
    with tempfile.TemporaryDirectory(prefix="metallb-fast-demo-") as tmp:
        log_dir = Path(tmp)
        print("cluster: starting etcd, kube-apiserver and kube-controller-manager", file=log, flush=True)
        with started_kube() as kube, ClusterLab(kube, log_dir, nodes=3, backend=backend) as cluster:
            print(
                f"cluster: lab {cluster.lab.prefix}: nodes {', '.join(h.name for h in cluster.lab.nodes)}, "
                f"controller + one speaker per node ({backend} backend)",
                file=log,
                flush=True,
            )
            for name in DEMO_EXAMPLES:
                rows += prove_example(cluster, EXAMPLES_DIR / name, log)
            codes = cluster.stop_programs()
            for program, code in codes.items():
                if code != 0:
                    print(f"cluster: {program} exited with {code}:\n{cluster.tail(program)}", file=log, flush=True)
            if cluster.xdp_attached():
                print(f"cluster: XDP still attached on {cluster.xdp_attached()}", file=log, flush=True)
                rows.append(ClusterRow("teardown", "-", "-", None, "detached", "still attached"))
    return rows


def prove_example(cluster: ClusterLab, path: Path, log: TextIO) -> list[ClusterRow]:
    print(f"\n$ kubectl apply -f examples/{path.name}", file=log, flush=True)
    cluster.apply(path)
    services = services_in(path)
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        if spec.get("selector"):
            cluster.add_ready_pods(meta.get("namespace", "default"), meta["name"], spec["selector"])
    plan = cluster.plan()
    rows = []
    for svc in services:
        namespace, name = svc["metadata"].get("namespace", "default"), svc["metadata"]["name"]
        entry = next(s for s in plan["services"] if (s["namespace"], s["name"]) == (namespace, name))
        if not entry["ips"]:
            print(f"  {namespace}/{name}: no address (as plan says: {_last_event(entry)})", file=log, flush=True)
            continue
        expected_ips: list[str] = entry["ips"]
        try:
            wait_for(
                functools.partial(_has_ingress, cluster, namespace, name, expected_ips),
                what=f"{namespace}/{name}'s address",
            )
        except TimeoutError:
            print(f"  {namespace}/{name}: controller wrote {cluster.ingress(namespace, name)}, plan says "
                  f"{entry['ips']}", file=log, flush=True)
        announcements = cluster.planned_nodes(namespace, name)
        for address in entry["ips"]:
            node = announcements.get(address)
            expected = cluster.node_mac(node) if node else None
            seen = _resolve_until(cluster, address, expected)
            rows.append(ClusterRow(path.stem, f"{namespace}/{name}", address, node, expected, seen))
            print(f"  {namespace}/{name} {address}: plan -> {node or 'nobody'}, client sees {seen or '-'}",
                  file=log, flush=True)
    remove_example(cluster, path)
    return rows


def _has_ingress(cluster: ClusterLab, namespace: str, name: str, ips: list[str]) -> bool:
    return cluster.ingress(namespace, name) == ips


def remove_example(cluster: ClusterLab, path: Path) -> None:
    """Delete what the example created, and wait until its namespaces are gone so the next one can reuse them.

    The lab's Pods have no kubelet to confirm their graceful deletion, so they are deleted with grace period 0."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    namespaces = sorted({str((d.get("metadata") or {}).get("name")) for d in documents if d.get("kind") == "Namespace"})
    for namespace in namespaces:
        cluster.kube.kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", check=False)
    cluster.kube.kubectl("delete", "-f", str(path), "--wait=false", check=False)
    wait_for(
        lambda: all(
            cluster.kube.kubectl("get", "namespace", ns, check=False).returncode != 0 for ns in namespaces
        ),
        timeout=90,
        what=f"namespaces {', '.join(namespaces)} deleted",
    )


def _resolve_until(cluster: ClusterLab, address: str, expected: str | None) -> str | None:
    if expected is None:
        return cluster.resolve(address)
    try:
        return wait_for(lambda: cluster.resolve(address) == expected and expected, timeout=ANSWER_TIMEOUT_S)
    except TimeoutError:
        return cluster.resolve(address)


def _last_event(entry: dict[str, Any]) -> str:
    events = entry.get("events") or []
    return events[-1]["message"] if events else "no event"


def print_cluster_table(rows: list[ClusterRow], out: TextIO) -> None:
    table = [("EXAMPLE", "SERVICE", "ADDRESS", "NODE (plan)", "MAC SEEN BY CLIENT", "RESULT")]
    for r in rows:
        table.append((r.example, r.service, r.address, r.node or "-", r.seen_mac or "-", "ok" if r.ok else "FAILED"))
    out.write(render_table(table))
    out.flush()
