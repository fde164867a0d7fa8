"""Everything together: a real API server, the controller, one speaker per lab node, and a client on the LAN.

A Service applied with kubectl gets an address; `arping` from the client resolves it to the MAC of the node that
`metallb-fast plan` names; that node's speaker wrote the ServiceL2Status. Then the API server goes away for a few
seconds, the cluster changes, and every program catches up without a restart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from metallb_fast.lab import Lab
from metallb_fast.lab.loopback_proxy import LoopbackProxy
from metallb_fast.testing.kubeenv import KubeEnv
from tests.conftest import require, require_root

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
METALLB_FAST = [sys.executable, "-m", "metallb_fast.cli"]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Cluster:
    kube: KubeEnv
    lab: Lab
    namespace: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def get(self, *args: str) -> Any:
        return orjson.loads(self.kube.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, manifest: str) -> None:
        self.kube.kubectl("apply", "-f", "-", input=manifest)

    def ingress(self, name: str) -> list[str]:
        svc = self.get("service", "-n", self.namespace, name)
        return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    def planned_node(self, service: str) -> str | None:
        """Ask `metallb-fast plan` which node announces the Service's first address, from the live objects."""
        documents = []
        for kind in ("nodes", "services", "endpointslices", "namespaces"):
            documents += self.get(kind, "-A")["items"]
        for kind in ("ipaddresspools", "l2advertisements"):
            for item in self.get(kind, "-n", "metallb-system")["items"]:
                item["apiVersion"], item["kind"] = "metallb.io/v1beta1", _singular(kind)
                documents.append(item)
        manifest = self.logs / "plan-input.yaml"
        manifest.write_text(yaml.safe_dump_all(documents))
        result = subprocess.run(
            [*METALLB_FAST, "plan", "-f", str(manifest), "-o", "json"], capture_output=True, text=True, check=True
        )
        plan = orjson.loads(result.stdout)
        entry = next(s for s in plan["services"] if s["namespace"] == self.namespace and s["name"] == service)
        return entry["announcements"][0]["node"] if entry["announcements"] else None

    def arping_mac(self, address: str) -> str | None:
        """The MAC the client's real arping gets for `address`, or None when nobody answers."""
        client = self.lab.clients[0]
        result = self.lab.run(
            client.netns, ["arping", "-c", "2", "-w", "3", "-I", "eth0", address], check=False, timeout=10
        )
        macs = re.findall(r"\[([0-9A-Fa-f:]{17})\]", result.stdout)
        return macs[0].lower() if macs else None

    def node_mac(self, node_name: str) -> str:
        host = next(h for h in self.lab.nodes if h.name == node_name)
        return host.mac("eth0").hex(":")

    def assert_running(self) -> None:
        for name, proc in self.processes.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.tail(name)}"

    def tail(self, name: str) -> str:
        return _tail(self.logs, name)


def _tail(logs: Path, name: str) -> str:
    path = logs / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""


def _singular(plural: str) -> str:
    return {"ipaddresspools": "IPAddressPool", "l2advertisements": "L2Advertisement"}[plural]


@pytest.fixture
def cluster(
    kube_controller_manager: KubeEnv, kube_namespace: str, tmp_path: Path
) -> Iterator[Cluster]:
    require_root()
    for tool in ("arping", "ip"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    kube = kube_controller_manager
    kube.kubectl("create", "namespace", "metallb-system", check=False)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with Lab(nodes=3, clients=1) as lab:
        for host in lab.nodes:
            kube.create_node(host.name, internal_ip=str(host.ipv4("eth0")))
        # Same port inside every node namespace as on the host, so the admin kubeconfig works unchanged there.
        with LoopbackProxy([h.netns for h in lab.nodes], port=kube.port, target_port=kube.port):
            kubeconfig = str(kube.kubeconfig_path("admin"))
            common = ["--kubeconfig", kubeconfig, "--metrics-port", "0", "--log-level", "debug"]
            logs = {}
            logs["controller"] = open(tmp_path / "controller.log", "wb")  # noqa: SIM115 - closed below
            processes["controller"] = subprocess.Popen(
                [*METALLB_FAST, "controller", *common], stdout=logs["controller"], stderr=subprocess.STDOUT
            )
            for host in lab.nodes:
                name = f"speaker-{host.name}"
                logs[name] = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed below
                processes[name] = lab.popen(
                    host.netns,
                    [*METALLB_FAST, "speaker", *common, "--node-name", host.name, "--backend", "xdp"],
                    stdout=logs[name],
                    stderr=subprocess.STDOUT,
                )
            try:
                yield Cluster(kube, lab, kube_namespace, processes, tmp_path)
            finally:
                for proc in processes.values():
                    if proc.poll() is None:
                        proc.terminate()
                for name, proc in processes.items():
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                        pytest.fail(f"{name} did not stop on SIGTERM")
                for handle in logs.values():
                    handle.close()
                # SIGTERM: every program exited cleanly, and each speaker detached its XDP program first.
                for name, proc in processes.items():
                    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{_tail(tmp_path, name)}"
                for host in lab.nodes:
                    links = lab.run(host.netns, ["ip", "-d", "link", "show"], check=True).stdout
                    assert "xdp" not in links, f"an XDP program is still attached in {host.name}:\n{links}"
                kube.kubectl("delete", "services", "--all", "-n", kube_namespace, check=False)
                kube.kubectl("delete", "ipaddresspools,l2advertisements", "--all", "-n", "metallb-system", check=False)
                kube.kubectl("delete", "nodes", *[h.name for h in lab.nodes], check=False)


CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: ["192.0.2.200-192.0.2.209"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
"""


def service_manifest(namespace: str, name: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports: [{{port: 80, protocol: TCP}}]
"""


def add_backends(cluster: Cluster, name: str) -> None:
    """One ready Pod of the Service on every node: every node may announce (Cluster policy)."""
    for i, host in enumerate(cluster.lab.nodes):
        cluster.kube.create_ready_pod(
            cluster.namespace, f"{name}-{i}", host.name, {"app": name}, [f"198.51.100.{10 + i}"]
        )


def test_service_answers_from_the_planned_node_and_survives_an_apiserver_outage(cluster: Cluster) -> None:
    cluster.apply(CONFIG)
    cluster.apply(service_manifest(cluster.namespace, "web"))
    add_backends(cluster, "web")
    address = wait_for(lambda: cluster.ingress("web"), what="web's address")[0]
    assert address.startswith("192.0.2.20")

    svc = cluster.get("service", "-n", cluster.namespace, "web")
    assert svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "lan"
    events = cluster.get("events", "-n", cluster.namespace)["items"]
    assert any(e["reason"] == "IPAllocated" and e["involvedObject"]["name"] == "web" for e in events)

    wait_for(lambda: cluster.get("endpointslices", "-n", cluster.namespace)["items"], what="EndpointSlices")
    winner = wait_for(lambda: cluster.planned_node("web"), what="plan names a node")
    expected_mac = cluster.node_mac(winner)
    assert wait_for(lambda: cluster.arping_mac(address) == expected_mac, what=f"{address} at {winner}'s MAC")

    def l2_statuses() -> list[dict[str, Any]]:
        return [
            s
            for s in cluster.get("servicel2statuses", "-n", "metallb-system")["items"]
            if (s.get("status") or {}).get("serviceName") == "web"
        ]

    statuses = wait_for(l2_statuses, what="ServiceL2Status for web")
    assert [s["status"]["node"] for s in statuses] == [winner]
    assert statuses[0]["metadata"]["labels"]["metallb.io/node"] == winner
    cluster.assert_running()

    # The API server goes away for a few seconds; changes made as soon as it is back are picked up by every
    # program without a restart.
    cluster.kube.restart_apiserver(down_for=3.0)
    cluster.kube.kubectl("label", "node", winner, f"{EXCLUDE_LABEL}=true")
    cluster.apply(service_manifest(cluster.namespace, "api"))
    add_backends(cluster, "api")

    new_winner = wait_for(lambda: cluster.planned_node("web"), what="plan after the outage")
    assert new_winner != winner
    assert wait_for(
        lambda: cluster.arping_mac(address) == cluster.node_mac(new_winner),
        timeout=60,
        what=f"{address} moved to {new_winner}",
    )
    api_address = wait_for(lambda: cluster.ingress("api"), timeout=60, what="api's address after the outage")[0]
    api_winner = wait_for(lambda: cluster.planned_node("api"), what="plan for api")
    assert wait_for(
        lambda: cluster.arping_mac(api_address) == cluster.node_mac(api_winner), timeout=60, what="api answers"
    )
    assert wait_for(lambda: [s["status"]["node"] for s in l2_statuses()] == [new_winner], what="status moved")
    cluster.assert_running()
