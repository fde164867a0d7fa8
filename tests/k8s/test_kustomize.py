"""deploy/kustomize as a user applies it, with the kustomize inside kubectl 1.20: the base is deploy/metallb-fast.yaml
object for object (both are generated from deploy/*.yaml); the image overlay changes the two images and nothing
else; the namespace overlay moves every namespaced object and every bound ServiceAccount, and once applied, the
controller running with a token of the ServiceAccount it binds there assigns addresses from a pool in that
namespace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeBinaries, KubeEnv
from tests.k8s.controller_harness import RunningController, ingress
from tests.k8s.own_env import (
    DEPLOY_DIR,
    KUSTOMIZE_DIR,
    by_id,
    kustomize,
    manifest_objects,
    own_kube_env,
    service_account_kubeconfig,
)

__all__ = ["own_kube_env"]  # a fixture: imported for pytest to find

BASE = KUSTOMIZE_DIR / "base"
IMAGE_OVERLAY = KUSTOMIZE_DIR / "overlays" / "image"
NAMESPACE_OVERLAY = KUSTOMIZE_DIR / "overlays" / "namespace"
NEW_NAMESPACE = "metallb-fast-system"  # what overlays/namespace says
NEW_IMAGE = "registry.example.com/metallb-fast:0.1.0"  # what overlays/image says
BINDINGS = ("RoleBinding", "ClusterRoleBinding")


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] not in ("Deployment", "DaemonSet"):
        return []
    return list(obj["spec"]["template"]["spec"]["containers"])


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = containers(obj)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def strings_naming(value: Any, text: str, path: str = "") -> Iterator[str]:
    """Paths of every string in `value` that contains `text`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings_naming(item, text, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_naming(item, text, f"{path}[{index}]")
    elif isinstance(value, str) and text in value:
        yield path


def test_base_is_the_all_in_one(kube_binaries: KubeBinaries) -> None:
    assert by_id(kustomize(kube_binaries, BASE)) == by_id(manifest_objects(DEPLOY_DIR / "metallb-fast.yaml"))


def test_image_overlay_changes_the_images_and_nothing_else(kube_binaries: KubeBinaries) -> None:
    base = by_id(kustomize(kube_binaries, BASE))
    overlay = by_id(kustomize(kube_binaries, IMAGE_OVERLAY))
    assert overlay.keys() == base.keys()
    images = {}
    for key, obj in overlay.items():
        for container in containers(obj):
            images[key[3]] = container.pop("image")
        for container in containers(base[key]):
            container.pop("image")
    assert images == {"controller": NEW_IMAGE, "speaker": NEW_IMAGE}
    assert overlay == base


def test_namespace_overlay_moves_everything(kube_binaries: KubeBinaries) -> None:
    base = kustomize(kube_binaries, BASE)
    objects = kustomize(kube_binaries, NAMESPACE_OVERLAY)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "Namespace") == sorted(
        (o["kind"], o["metadata"]["name"]) for o in base if o["kind"] != "Namespace")
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    (old,) = [o for o in base if o["kind"] == "Namespace"]
    assert namespace["metadata"] == {**old["metadata"], "name": NEW_NAMESPACE}  # Pod Security labels kept
    namespaced = {(o["kind"], o["metadata"]["name"]) for o in base if "namespace" in o["metadata"]}
    assert namespaced, "the base has namespaced objects"
    for obj in objects:
        if (obj["kind"], obj["metadata"]["name"]) in namespaced:
            assert obj["metadata"]["namespace"] == NEW_NAMESPACE, obj["metadata"]
        if obj["kind"] in BINDINGS:
            assert {s["namespace"] for s in obj["subjects"]} == {NEW_NAMESPACE}, obj["metadata"]["name"]
        # The old namespace survives only in the cluster-wide roles' names (MetalLB's names, kept on purpose).
        paths = set(strings_naming(obj, "metallb-system"))
        allowed = {".metadata.name", ".roleRef.name"} if obj["kind"].startswith("Cluster") else set()
        assert paths <= allowed, (obj["kind"], obj["metadata"]["name"], paths - allowed)
    # The programs find their namespace at run time: the Pod's own, which is the overlay's.
    by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "DaemonSet")}
    own_namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env_of(by_name["controller"])["METALLB_NAMESPACE"] == own_namespace
    assert env_of(by_name["speaker"])["METALLB_NAMESPACE"] == own_namespace
    assert env_of(by_name["speaker"])["METALLB_ML_NAMESPACE"] == own_namespace


def test_image_overlay_applies(own_kube_env: KubeEnv) -> None:
    own_kube_env.kubectl("apply", "-k", str(IMAGE_OVERLAY))
    applied = orjson.loads(own_kube_env.kubectl("get", "-k", str(IMAGE_OVERLAY), "-o", "json").stdout)["items"]
    assert {(o["kind"], o["metadata"]["name"]) for o in applied} == {
        (o["kind"], o["metadata"]["name"]) for o in kustomize(own_kube_env, IMAGE_OVERLAY)}
    stored = {o["metadata"]["name"]: [c["image"] for c in containers(o)] for o in applied if containers(o)}
    assert stored == {"controller": [NEW_IMAGE], "speaker": [NEW_IMAGE]}


def test_namespace_overlay_applies_and_its_controller_assigns(own_kube_env: KubeEnv) -> None:
    env = own_kube_env
    env.kubectl("apply", "-k", str(NAMESPACE_OVERLAY))
    env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    applied = orjson.loads(env.kubectl("get", "-k", str(NAMESPACE_OVERLAY), "-o", "json").stdout)["items"]
    assert {o["metadata"].get("namespace") for o in applied} == {None, NEW_NAMESPACE}

    # Namespaced grants reach the moved ServiceAccounts in the new namespace, and only there.
    for account in ("controller", "speaker"):
        for namespace, allowed in ((NEW_NAMESPACE, "yes"), ("default", "no")):
            answer = env.kubectl("auth", "can-i", "get", "secrets", "-n", namespace,
                                 f"--as=system:serviceaccount:{NEW_NAMESPACE}:{account}", check=False).stdout.strip()
            assert answer == allowed, (account, namespace, answer)

    controller_env = env_of(next(o for o in applied if o["kind"] == "Deployment"))
    env.kubectl("apply", "-f", "-", input=f"""apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: moved, namespace: {NEW_NAMESPACE}}}
spec: {{addresses: [198.51.100.40/30]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: moved, namespace: {NEW_NAMESPACE}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: web}}
---
apiVersion: v1
kind: Service
metadata: {{name: site, namespace: web}}
spec:
  type: LoadBalancer
  ports: [{{port: 80, protocol: TCP}}]
""")
    running = RunningController(
        env, kubeconfig=service_account_kubeconfig(env, NEW_NAMESPACE, "controller"), namespace=NEW_NAMESPACE,
        memberlist_secret=controller_env["METALLB_ML_SECRET_NAME"], deployment=controller_env["METALLB_DEPLOYMENT"])
    try:
        assert wait_for(lambda: ingress(env, "web", "site"), what="site's address") == ["198.51.100.40"]
        # The memberlist Secret lands beside the speakers that mount it.
        wait_for(lambda: env.kubectl("get", "secret", "memberlist", "-n", NEW_NAMESPACE, check=False).returncode == 0,
                 what="the memberlist Secret in the new namespace")
    finally:
        running.stop()
