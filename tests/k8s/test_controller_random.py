"""A randomized run of the controller against a real kube-apiserver (hypothesis stateful, bounded).

Services are created, changed (sharing key, requested address, requested pool, ports, type) and deleted, pools
created, resized and deleted, and the controller (with deploy/'s ServiceAccount) is stopped and started again,
with changes made while it is down. Changes come in bursts the controller works through as they arrive; at every
quiescent point between bursts (changes stop until the controller has seen every one and has nothing left to do)
two things must hold:
- no address is held by two Services that may not share it (both allow sharing under one key, no port twice);
- the Services' state (status addresses, pool annotation) is `metallb-fast plan` of the exported objects
  (`kubectl get services,ipaddresspools,namespaces -A -o yaml`): a restarted controller would change nothing.

METALLB_FAST_RANDOM_RUNS and METALLB_FAST_RANDOM_STEPS make a longer soak (defaults: 3 runs of 30 steps).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from metallb_fast.controller.loop import Controller
from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.controller_harness import RunningController
from tests.unit.plan_cli import plan

RUNS = int(os.environ.get("METALLB_FAST_RANDOM_RUNS", "3"))
STEPS = int(os.environ.get("METALLB_FAST_RANDOM_STEPS", "30"))
SETTLE_TIMEOUT_S = 30.0

METALLB_NAMESPACE = "metallb-system"
SERVICES = ("s0", "s1", "s2", "s3", "s4")
# Each pool lives in its own region, so pools never overlap (an invalid configuration is kept out: the controller
# would go on with the last valid one, which no manifest describes).
POOL_SHAPES: dict[str, tuple[tuple[str, ...], ...]] = {
    "p0": (("192.0.2.200/30",), ("192.0.2.200/31",), ("192.0.2.202-192.0.2.203",), ("192.0.2.201/32",)),
    "p1": (("192.0.2.204/30",), ("192.0.2.204/32", "192.0.2.206/32"), ("192.0.2.205-192.0.2.207",)),
    "p2": (("192.0.2.208/31",), ("192.0.2.209/32",)),
}
REQUESTABLE = (*(f"192.0.2.{n}" for n in range(200, 210)), "192.0.2.250")  # .250: in no pool
SHARING_KEYS = (None, "k1", "k2")

Key = str  # namespace/name
State = dict[Key, tuple[list[str], str | None]]  # status addresses, ip-allocated-from-pool


def service_manifest(namespace: str, name: str, *, ports: tuple[int, ...], sharing: str | None,
                     requested: str | None, pool: str | None, load_balancer: bool) -> str:
    annotations = {}
    if sharing:
        annotations["metallb.io/allow-shared-ip"] = sharing
    if requested:
        annotations["metallb.io/loadBalancerIPs"] = requested
    if pool:
        annotations["metallb.io/address-pool"] = pool
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer" if load_balancer else "ClusterIP",
            "selector": {"app": name},
            "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"} for port in ports],
        },
    }
    return json.dumps(service)


def pool_manifest(name: str, addresses: tuple[str, ...], auto_assign: bool) -> str:
    return json.dumps({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": METALLB_NAMESPACE},
        "spec": {"addresses": list(addresses), "autoAssign": auto_assign},
    })


def versions(items: Any) -> dict[str, str]:
    return {f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in items}


def settle(kube_env: KubeEnv, controller: Controller) -> None:
    """Until the controller's caches hold what the API server holds, its queue is empty and two looks in a row
    find the same: nothing is in flight."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    previous: object = None
    pools = next(i for i in controller.config.informers if i.resource.plural == "ipaddresspools")
    while True:
        api = (
            versions(kube_env.request("GET", "/api/v1/services")["items"]),
            versions(kube_env.request("GET", f"/apis/metallb.io/v1beta1/namespaces/{METALLB_NAMESPACE}/"
                                             "ipaddresspools")["items"]),
        )
        seen = (controller.services.versions(), pools.versions())
        now = (api, controller.processed)
        if api == seen and controller.backlog == 0 and now == previous:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the controller did not settle in {SETTLE_TIMEOUT_S:.0f}s")
        previous = now
        time.sleep(0.15)


def service_state(objects: list[dict[str, Any]]) -> State:
    state: State = {}
    for obj in objects:
        if obj.get("kind") != "Service":
            continue
        meta = obj["metadata"]
        ips = [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        if obj["spec"].get("type") == "LoadBalancer" or ips:
            pool = (meta.get("annotations") or {}).get("metallb.io/ip-allocated-from-pool")
            state[f"{meta['namespace']}/{meta['name']}"] = (ips, pool)
    return state


def unshareable_pairs(objects: list[dict[str, Any]]) -> list[str]:
    """Pairs of Services on one address that MetalLB's sharing rules keep apart."""
    holders: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj.get("kind") == "Service":
            for ingress in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                holders.setdefault(ingress["ip"], []).append(obj)
    found = []
    for ip, services in holders.items():
        for a, b in itertools.combinations(services, 2):
            keys = [(s["metadata"].get("annotations") or {}).get("metallb.io/allow-shared-ip") for s in (a, b)]
            ports = [{(p.get("protocol", "TCP"), p["port"]) for p in s["spec"].get("ports") or []} for s in (a, b)]
            if not keys[0] or keys[0] != keys[1] or ports[0] & ports[1]:
                found.append(f"{ip}: {a['metadata']['name']} (key {keys[0]!r}, ports {sorted(ports[0])}) and "
                             f"{b['metadata']['name']} (key {keys[1]!r}, ports {sorted(ports[1])})")
    return found


def planned_state(export: str, workdir: Path) -> State:
    manifest = workdir / "export.yaml"
    manifest.write_text(export)
    code, out, err = plan("-f", str(manifest), "-o", "json", "--cluster-ip-families", "IPv4")
    assert code == 0, err
    return {f"{s['namespace']}/{s['name']}": (s["ips"], s["pool"]) for s in json.loads(out)["services"]}


def controller_machine(kube_env: KubeEnv, namespace: str, workdir: Path) -> type[RuleBasedStateMachine]:
    class ControllerRun(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.controller: RunningController | None = RunningController(kube_env)
            self.pools: set[str] = set()

        @rule(
            name=st.sampled_from(SERVICES),
            ports=st.sampled_from(((80,), (443,), (80, 443))),
            sharing=st.sampled_from(SHARING_KEYS),
            requested=st.none() | st.sampled_from(REQUESTABLE),
            pool=st.sampled_from((None, None, "p0", "p1")),
            load_balancer=st.sampled_from((True, True, True, False)),
        )
        def put_service(self, name: str, ports: tuple[int, ...], sharing: str | None, requested: str | None,
                        pool: str | None, load_balancer: bool) -> None:
            manifest = service_manifest(namespace, name, ports=ports, sharing=sharing, requested=requested,
                                        pool=pool, load_balancer=load_balancer)
            kube_env.kubectl("apply", "-f", "-", input=manifest)

        @rule(name=st.sampled_from(SERVICES))
        def delete_service(self, name: str) -> None:
            kube_env.kubectl("delete", "service", "-n", namespace, name, "--ignore-not-found", "--wait=true")

        @rule(data=st.data(), name=st.sampled_from(sorted(POOL_SHAPES)), auto_assign=st.sampled_from((True, True,
                                                                                                       False)))
        def put_pool(self, data: st.DataObject, name: str, auto_assign: bool) -> None:
            addresses = data.draw(st.sampled_from(POOL_SHAPES[name]), label="addresses")
            kube_env.kubectl("apply", "-f", "-", input=pool_manifest(name, addresses, auto_assign))
            self.pools.add(name)

        @precondition(lambda self: bool(self.pools))
        @rule(data=st.data())
        def delete_pool(self, data: st.DataObject) -> None:
            name = data.draw(st.sampled_from(sorted(self.pools)), label="pool")
            kube_env.kubectl("delete", "ipaddresspool", "-n", METALLB_NAMESPACE, name, "--wait=true")
            self.pools.discard(name)

        @precondition(lambda self: self.controller is not None)
        @rule()
        def stop_controller(self) -> None:
            assert self.controller is not None
            self.controller.stop()
            self.controller = None

        @precondition(lambda self: self.controller is None)
        @rule()
        def start_controller(self) -> None:
            self.controller = RunningController(kube_env)

        @rule()
        def quiet_point(self) -> None:
            """Changes come in bursts (the controller works while they arrive); here they stop until it is idle."""
            if self.controller is None:
                self.controller = RunningController(kube_env)
            self.check()

        def check(self) -> None:
            assert self.controller is not None
            settle(kube_env, self.controller.controller)
            export = kube_env.kubectl("get", "services,ipaddresspools,namespaces", "-A", "-o", "yaml").stdout
            objects = yaml.safe_load(export)["items"]
            assert unshareable_pairs(objects) == []
            assert service_state(objects) == planned_state(export, workdir)

        def teardown(self) -> None:
            try:
                self.quiet_point()  # the last burst is checked too
            finally:
                if self.controller is not None:
                    self.controller.stop()
            kube_env.kubectl("delete", "services", "--all", "-n", namespace, "--wait=true", check=False)
            kube_env.kubectl("delete", "ipaddresspools", "--all", "-n", METALLB_NAMESPACE, "--wait=true",
                             check=False)

    return ControllerRun


def test_random_changes_and_restarts_keep_addresses_unshared_and_equal_to_plan(
    kube_env: KubeEnv, lb_namespace: str, metallb_namespace: str, tmp_path: Path
) -> None:
    machine = controller_machine(kube_env, lb_namespace, tmp_path)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            phases=(Phase.generate,),  # no shrinking: each step costs API calls; the failing steps are printed
            suppress_health_check=list(HealthCheck),
        ),
    )
