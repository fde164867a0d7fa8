"""What the controller tests share: manifests, reads through kubectl, and the controller program on a thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from metallb_fast.controller.loop import Controller
from metallb_fast.k8s.client import KubeClient
from metallb_fast.testing.kubeenv import KubeEnv


def get_json(kube_env: KubeEnv, *args: str) -> Any:
    return orjson.loads(kube_env.kubectl("get", "-o", "json", *args).stdout)


def pool(name: str, *addresses: str) -> str:
    entries = "\n".join(f"    - {a}" for a in addresses)
    return f"""apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: metallb-system}}
spec:
  addresses:
{entries}
"""


def service(namespace: str, name: str, port: int = 80, annotations: str = "{}") -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, annotations: {annotations}}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports: [{{port: {port}, protocol: TCP}}]
"""


def ingress(kube_env: KubeEnv, namespace: str, name: str) -> list[str]:
    svc = get_json(kube_env, "service", "-n", namespace, name)
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


class RunningController:
    def __init__(self, kube_env: KubeEnv, kubeconfig: Path | None = None, **options: Any) -> None:
        # The controller's own ServiceAccount, bound by deploy/rbac.yaml: what a user deploys is what we test.
        # (`kubeconfig`: another ServiceAccount's, e.g. the one a kustomize overlay binds in its namespace.)
        self.client = KubeClient.from_kubeconfig(str(kubeconfig or kube_env.kubeconfig_path("controller")))
        options.setdefault("namespace", "metallb-system")
        self.controller = Controller(self.client, **options)
        self.thread = threading.Thread(target=self.controller.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.controller.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "controller did not stop"
        self.client.close()
