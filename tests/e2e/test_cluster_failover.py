"""Failover through memberlist on a whole lab cluster: the controller and three speakers (memberlist on, MetalLB's
LAN timing, encrypted), a client on the LAN. SIGKILL of the announcing speaker: the survivors declare it dead and
the next node in the election's order takes the address; the client's ARP then resolves to that node's MAC. The
killed speaker comes back (as the kubelet restarts it), rejoins, and the address settles on one node again.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import orjson
import pytest

from metallb_fast.lab.cluster import ClusterLab
from metallb_fast.lab.tools import arping
from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv
from tests.conftest import require, require_root
from tests.e2e.test_cluster_lab import CONFIG, service_manifest


@pytest.fixture
def ml_cluster(kube_controller_manager: KubeEnv, kube_namespace: str, tmp_path: Path) -> Iterator[ClusterLab]:
    require_root()
    require(shutil.which("arping") is not None, "the arping tool")
    kube = kube_controller_manager
    # A killed speaker's XDP program answers until its liveness deadline: keep that below memberlist's detection
    # time (about 5-7 s at these timings) so that only the new owner answers once the address has moved.
    with ClusterLab(kube, tmp_path, nodes=3, backend="xdp", memberlist_timing="metallb",
                    liveness_timeout_s=2.0) as lab:
        try:
            yield lab
        finally:
            lab.stop_and_verify([kube_namespace])


def answering(cluster: ClusterLab, address: str) -> set[str]:
    """Every MAC that answers the client's ARP requests for `address` (two requests)."""
    return {mac.hex(":") for mac in arping(cluster.lab, cluster.lab.clients[0].netns, IPv4Address(address))}


def members_joined(cluster: ClusterLab, node: str) -> set[str]:
    """The members whose join this node's speaker has logged (its JSON log lines)."""
    joined = set()
    for line in cluster.tail(f"speaker-{node}", 100_000).splitlines():
        with contextlib.suppress(ValueError):
            entry = orjson.loads(line)
            if entry.get("op") == "memberlist" and entry.get("event") == "join":
                joined.add(entry.get("node"))
    return joined


def test_address_moves_when_the_announcing_speaker_is_sigkilled(
    ml_cluster: ClusterLab, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, ns = ml_cluster, kube_namespace
    cluster.apply(CONFIG)
    cluster.apply(service_manifest(ns, "web"))
    cluster.add_ready_pods(ns, "web", {"app": "web"})
    address = wait_for(lambda: cluster.ingress(ns, "web"), what="web's address")[0]
    nodes = [host.name for host in cluster.lab.nodes]
    # Every speaker sees the two others (their logs name each join) before the fault.
    wait_for(lambda: all(members_joined(cluster, n) >= set(nodes) - {n} for n in nodes), timeout=60,
             what="memberlist formed")
    winner = wait_for(lambda: cluster.planned_nodes(ns, "web").get(address), what="plan names a node")
    wait_for(lambda: answering(cluster, address) == {cluster.node_mac(winner)}, timeout=30,
             what=f"only {winner} answers {address}")
    expected = cluster.planned_nodes(ns, "web", dead=[winner])[address]
    assert expected not in (None, winner)

    killed_at = time.monotonic()
    cluster.kill_speaker(winner)
    wait_for(lambda: answering(cluster, address) == {cluster.node_mac(expected)}, timeout=30, interval=0.05,
             what=f"{address} answered by {expected} alone after {winner}'s speaker was killed")
    moved_after = time.monotonic() - killed_at
    log = cluster.tail(f"speaker-{expected}", 100_000)
    assert "membership" in log and winner in log, "the new owner's log names membership as the reason"
    with capsys.disabled():
        print(f"\n[failover] SIGKILL of {winner}'s speaker -> only {expected} answers {address}: {moved_after:.2f} s")

    # The kubelet restarts the speaker: it rejoins (refuting its death), and the address settles on one node.
    cluster.restart_speaker(winner)
    wait_for(lambda: answering(cluster, address) == {cluster.node_mac(winner)}, timeout=60,
             what=f"{address} back at {winner} after its speaker restarted")
    assert cluster.dead_programs() == {}
