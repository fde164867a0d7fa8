"""`metallb-fast status` against the real API server, as an operator runs it: with a kubeconfig of a ServiceAccount
bound to a dedicated read-only ClusterRole (defined here: exactly what the command reads), while our controller
(its deploy/ ServiceAccount) assigns and our speaker (its deploy/ ServiceAccount, a stand-in fast path that sends
nothing) announces, writes ServiceL2Status and serves its metrics."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from metallb_fast.cli import main
from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.base import AddressCounters, Owned, ResponderStats, Verdict
from metallb_fast.k8s.client import KubeClient
from metallb_fast.lab.waiting import wait_for
from metallb_fast.obs import http
from metallb_fast.obs.health import Health
from metallb_fast.speaker.loop import Speaker, SpeakerOptions
from metallb_fast.testing.kubeenv import Identity, KubeEnv, kubeconfig
from tests.k8s.controller_harness import RunningController, ingress, pool, service
from tests.k8s.own_env import service_account_kubeconfig

READER_ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: metallb-fast-status-reader}
rules:
- apiGroups: [""]
  resources: [services, namespaces, nodes, pods]
  verbs: [get, list]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list]
- apiGroups: [metallb.io]
  resources: [ipaddresspools, l2advertisements, bgpadvertisements, bgppeers, communities, bfdprofiles,
              servicel2statuses]
  verbs: [get, list]
"""


class StandInFastPath:
    """Answers nothing and sends nothing: counts as if every owned address had been asked 5 times."""

    backend = "stand-in"

    def __init__(self) -> None:
        self.owned: Owned = {}

    def sync(self, owned: Owned) -> None:
        self.owned = dict(owned)

    def stats(self) -> ResponderStats:
        counters = {key: AddressCounters(5, 4) for key in self.owned}
        return ownership.stats(self.backend, list(self.owned), counters, {Verdict.NOT_OWNED: 1})

    def announce(self, address: Any, interface: str) -> None: ...

    def set_liveness_deadline(self, deadline_ns: int | None) -> None: ...

    def serve_heartbeats(self, port: int, interfaces: Any) -> None: ...

    def close(self, keep_serving: bool = False) -> None: ...


@pytest.fixture
def reader(kube_env: KubeEnv, kube_namespace: str) -> Iterator[Path]:
    """The kubeconfig of ServiceAccount status-reader, bound to the read-only role alone."""
    kube_env.kubectl("apply", "-f", "-", input=READER_ROLE)
    kube_env.kubectl("create", "serviceaccount", "status-reader", "-n", kube_namespace)
    binding = f"status-reader-{kube_namespace}"
    kube_env.kubectl("create", "clusterrolebinding", binding, "--clusterrole=metallb-fast-status-reader",
                     f"--serviceaccount={kube_namespace}:status-reader")
    yield service_account_kubeconfig(kube_env, kube_namespace, "status-reader")
    kube_env.kubectl("delete", "clusterrolebinding", binding, check=False)


@pytest.fixture
def nodes(kube_env: KubeEnv, kube_namespace: str) -> Iterator[tuple[str, str]]:
    announcer, other = f"{kube_namespace}-n1", f"{kube_namespace}-n2"
    kube_env.create_node(announcer, {"status-test": "announce"}, internal_ip="192.0.2.31")
    kube_env.create_node(other, {}, internal_ip="192.0.2.32")
    yield announcer, other
    kube_env.kubectl("delete", "node", announcer, other, check=False)


def status(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["status", *args])
    return code, out.getvalue(), err.getvalue()


def ready_slice(kube_env: KubeEnv, namespace: str, name: str, node: str) -> None:
    kube_env.request("POST", f"/apis/discovery.k8s.io/v1beta1/namespaces/{namespace}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}, "nodeName": node}]})


def test_status_shows_address_pool_node_counters_and_why_not(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, nodes: tuple[str, str], reader: Path,
    run_controller: Callable[..., RunningController],
) -> None:
    ns, (announcer, other) = lb_namespace, nodes
    l2 = (f"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n"
          f"metadata: {{name: l2, namespace: {metallb_namespace}}}\n"
          "spec: {ipAddressPools: [status-pool], nodeSelectors: [{matchLabels: {status-test: announce}}]}\n")
    kube_env.kubectl("apply", "-f", "-", input=pool("status-pool", "203.0.113.0/30") + "---\n" + l2)
    kube_env.kubectl("apply", "-f", "-", input="---\n".join((
        service(ns, "web", annotations="{metallb.io/address-pool: status-pool}"),
        service(ns, "idle", annotations="{metallb.io/address-pool: status-pool}"),
        service(ns, "ghost", annotations="{metallb.io/address-pool: nope}"))))
    ready_slice(kube_env, ns, "web", other)  # Cluster policy: an endpoint on any node will do
    run_controller()
    web_ip = wait_for(lambda: ingress(kube_env, ns, "web"), what="web's address")[0]
    idle_ip = wait_for(lambda: ingress(kube_env, ns, "idle"), what="idle's address")[0]

    # The speaker of the announcing node, with its own ServiceAccount, and its metrics endpoint on loopback,
    # where its (hostNetwork) Pod's address says it is.
    speaker_client = KubeClient.from_kubeconfig(str(kube_env.kubeconfig_path("speaker")))
    speaker = Speaker(speaker_client, StandInFastPath(), SpeakerOptions(node_name=announcer, on_sigterm="handover"))
    thread = threading.Thread(target=speaker.run, daemon=True)
    thread.start()
    server = http.serve(0, "127.0.0.1", Health())
    try:
        kube_env.request("POST", f"/api/v1/namespaces/{metallb_namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"speaker-{ns}", "labels": {"app": "metallb", "component": "speaker"}},
            "spec": {"nodeName": announcer, "hostNetwork": True,
                     "containers": [{"name": "speaker", "image": "example.invalid/none"}]}})
        kube_env.patch_status(f"/api/v1/namespaces/{metallb_namespace}/pods/speaker-{ns}",
                              {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]})

        def shown() -> dict[str, Any] | None:
            code, out, err = status("--kubeconfig", str(reader), "-o", "json", "--scrape",
                                    "--metrics-port", str(server.server_address[1]))
            assert code == 0, err
            entries = {f"{s['namespace']}/{s['name']}": s for s in json.loads(out)["services"]}
            web = entries.get(f"{ns}/web")
            return entries if web and web["announcedBy"] else None

        entries = wait_for(shown, timeout=30, what="web announced by the speaker")
        web, idle, ghost = (entries[f"{ns}/{n}"] for n in ("web", "idle", "ghost"))
        assert (web["ips"], web["pool"], web["why"]) == ([web_ip], "status-pool", None)
        assert web["announcedBy"] == [{"node": announcer, "interfaces": []}]
        pairs = sum(1 for ip, _ in speaker.owned if str(ip) == web_ip)  # the host's links that can answer it
        assert pairs, f"no link of this host can answer ARP: {speaker.owned}"
        assert web["counters"] == {web_ip: {"requests": 5.0 * pairs, "responses": 4.0 * pairs}}
        assert (idle["ips"], idle["announcedBy"]) == ([idle_ip], [])
        assert idle["why"].startswith("not announced: no serving endpoint")
        assert ghost["ips"] == [] and ghost["why"].startswith("no address assigned: AllocationFailed")

        code, table, _ = status("--kubeconfig", str(reader))
        assert code == 0
        lines = table.splitlines()
        assert lines[0].split() == ["SERVICE", "IPS", "POOL", "NODE", "INTERFACES"]
        assert f"{ns}/web {web_ip} status-pool {announcer} all".split() in [line.split() for line in lines]
        idle_line = next(i for i, line in enumerate(lines) if line.startswith(f"{ns}/idle"))
        assert lines[idle_line + 1].strip().startswith("not announced: no serving endpoint")
    finally:
        speaker.stop()
        thread.join(timeout=15)
        server.shutdown()
        server.server_close()
        speaker_client.close()
        kube_env.kubectl("delete", "pod", f"speaker-{ns}", "-n", metallb_namespace, "--wait=false", check=False)
    assert not thread.is_alive()


def test_status_with_refused_credentials_is_one_clear_line(kube_env: KubeEnv, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(kube_env.server, kube_env.pki.ca_cert, Identity("nobody", "not-a-token", ())))
    code, out, err = status("--kubeconfig", str(path))
    assert (code, out) == (1, "")
    assert err.startswith("metallb-fast status: API server") and "HTTP 401" in err and "Traceback" not in err
