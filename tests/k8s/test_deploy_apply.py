"""deploy/ as a user applies it: every manifest passes a server-side dry run, and the RBAC grants each program what
it does (checked with `kubectl auth can-i` as the controller's and the speaker's service accounts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.apply import dry_run_apply

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(DEPLOY_DIR.glob("*.yaml")) + sorted((DEPLOY_DIR / "crds").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[str(p.relative_to(DEPLOY_DIR)) for p in MANIFESTS])
def test_manifest_applies(path: Path, kube_env: KubeEnv) -> None:
    output = dry_run_apply(kube_env, path)
    assert "(server dry run)" in output, output


# (user, verb, resource, namespace or "" for all namespaces / cluster scope, allowed)
PERMISSIONS = [
    ("controller", "watch", "services", "", True),
    ("controller", "update", "services --subresource=status", "", True),
    ("controller", "patch", "services --subresource=status", "", True),
    ("controller", "create", "events", "web", True),
    ("controller", "watch", "namespaces", "", True),
    ("controller", "watch", "ipaddresspools.metallb.io", "metallb-system", True),
    ("controller", "watch", "l2advertisements.metallb.io", "metallb-system", True),
    ("controller", "update", "ipaddresspools.metallb.io --subresource=status", "metallb-system", True),
    ("controller", "create", "configurationstates.metallb.io", "metallb-system", True),
    ("controller", "update", "services", "", False),
    ("controller", "delete", "services", "web", False),
    ("controller", "watch", "ipaddresspools.metallb.io", "web", False),
    ("speaker", "watch", "services", "", True),
    ("speaker", "watch", "endpointslices.discovery.k8s.io", "", True),
    ("speaker", "watch", "nodes", "", True),
    ("speaker", "get", "pods", "metallb-system", True),
    ("speaker", "watch", "l2advertisements.metallb.io", "metallb-system", True),
    ("speaker", "watch", "configmaps", "metallb-system", True),
    ("speaker", "create", "servicel2statuses.metallb.io", "metallb-system", True),
    ("speaker", "delete", "servicel2statuses.metallb.io", "metallb-system", True),
    ("speaker", "create", "configurationstates.metallb.io", "metallb-system", True),
    ("speaker", "create", "events", "web", True),
    ("speaker", "update", "services --subresource=status", "", False),
    ("speaker", "get", "secrets", "web", False),
]


@pytest.fixture(scope="module")
def rbac_applied(kube_env: KubeEnv) -> KubeEnv:
    # For real this time: `auth can-i` asks the authorizer about stored roles.
    kube_env.kubectl("apply", "-f", str(DEPLOY_DIR / "namespace.yaml"), "-f", str(DEPLOY_DIR / "rbac.yaml"))
    return kube_env


@pytest.mark.parametrize(("user", "verb", "resource", "namespace", "allowed"), PERMISSIONS,
                         ids=[f"{u}-{v}-{r.split()[0]}{'-status' if 'status' in r else ''}-{n or 'all'}"
                              for u, v, r, n, _ in PERMISSIONS])
def test_rbac(user: str, verb: str, resource: str, namespace: str, allowed: bool, rbac_applied: KubeEnv) -> None:
    args = ["auth", "can-i", verb, *resource.split()]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    result = rbac_applied.kubectl(*args, user=user, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    assert (answer == "yes") == allowed, f"{user} {verb} {resource} in {namespace or 'all namespaces'}: {answer}"
