"""An API server of a test module's own, for tests that rewrite cluster-wide objects the session's server must keep
as deploy/ makes them (a namespace overlay rebinds the ClusterRoleBindings; a migration replaces our CRDs with
MetalLB's and back), and kustomize rendering with the kubectl that matches it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_fast.testing.kubeenv import Identity, KubeBinaries, KubeEnv, kubeconfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO / "deploy"
KUSTOMIZE_DIR = DEPLOY_DIR / "kustomize"


@pytest.fixture(scope="module")
def own_kube_env(kube_binaries: KubeBinaries) -> Iterator[KubeEnv]:
    """A fresh etcd + kube-apiserver: no CRDs, no RBAC, nothing but the built-in namespaces."""
    with KubeEnv(kube_binaries) as env:
        yield env


def service_account_kubeconfig(env: KubeEnv, namespace: str, name: str) -> Path:
    """A kubeconfig holding a token the API server issues for the ServiceAccount (a TokenRequest, as the kubelet
    asks for a Pod's): the program then has exactly the roles bound to that account, in whatever namespace."""
    response = env.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    token = str(response["status"]["token"])  # type: ignore[index]
    user = Identity(f"system:serviceaccount:{namespace}:{name}", token, ())
    path = env.workdir / f"kubeconfig-sa-{namespace}-{name}"
    path.write_text(kubeconfig(env.server, env.pki.ca_cert, user))
    return path


def kustomize(env_or_binaries: KubeEnv | KubeBinaries, directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize directory` prints (kubectl 1.20: kustomize v2.0.3 inside)."""
    binaries = env_or_binaries.binaries if isinstance(env_or_binaries, KubeEnv) else env_or_binaries
    result = subprocess.run([str(binaries.kubectl), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def object_id(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    metadata = obj.get("metadata") or {}
    return obj["apiVersion"], obj["kind"], metadata.get("namespace", ""), metadata["name"]


def by_id(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {object_id(o): o for o in objects}
    assert len(out) == len(objects), "two objects with one apiVersion, kind, namespace and name"
    return out


def manifest_objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
