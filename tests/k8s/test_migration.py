"""docs/migrating-from-metallb.md, followed against a real API server: MetalLB's manifest applied (its pods cannot
run here: no images, no kubelet; its objects are what matters), a pool, an advertisement and two Services (one with
the address MetalLB's controller gave it), then every command block the guide marks `<!-- test: NAME -->`, run as
written. After the migration our controller, with its own ServiceAccount's token, keeps the address, assigns the
other, MetalLB's memberlist Secret is kept, a new pool can be created (the webhook no longer blocks it) and nothing
of MetalLB's is left that ours neither replaced nor the guide deleted. The rollback brings MetalLB's objects back.
The compatibility table names every environment variable, metric and event reason either side has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv, KubeEnvError
from tests.conftest import require
from tests.k8s.controller_harness import RunningController, get_json, ingress
from tests.k8s.own_env import DEPLOY_DIR, KUSTOMIZE_DIR, REPO, kustomize, manifest_objects, object_id, own_kube_env

__all__ = ["own_kube_env"]  # a fixture: imported for pytest to find

GUIDE = REPO / "docs" / "migrating-from-metallb.md"
METALLB_MANIFEST = REPO.parent / "shared" / "reference" / "metallb-native.yaml"
STEPS = ("backup", "remove-webhook", "install", "check", "finish", "rollback-timers", "rollback")
WEBHOOK = ("ValidatingWebhookConfiguration", "metallb-webhook-configuration")
SECRET_KEY = "c2VjcmV0LWtleS1vZi1tZXRhbGxi"  # what MetalLB's controller would have made (any base64 will do)


def guide_steps(text: str) -> dict[str, str]:
    """Marked command blocks: `<!-- test: NAME -->`, then a ```sh fence; NAME -> the commands."""
    found = re.findall(r"<!-- test: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S)
    steps = dict(found)
    assert len(steps) == len(found), "a step name is used twice"
    return steps


def metallb_objects() -> list[dict[str, Any]]:
    require(METALLB_MANIFEST.is_file(), f"MetalLB's manifest ({METALLB_MANIFEST})")
    return manifest_objects(METALLB_MANIFEST)


class Guide:
    """Runs the guide's steps as a user would: bash, kubectl on the PATH as the cluster admin, in a checkout."""

    def __init__(self, env: KubeEnv, checkout: Path) -> None:
        self.env = env
        self.checkout = checkout
        self.steps = guide_steps(GUIDE.read_text())
        bin_dir = checkout / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").symlink_to(env.binaries.kubectl)
        self.environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                        "KUBECONFIG": str(env.kubeconfig_path("admin")), "METALLB_MANIFEST": str(METALLB_MANIFEST)}

    def run(self, name: str, prelude: str = "") -> str:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + self.steps[name]], cwd=self.checkout,
                                env=self.environ, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"step {name} failed:\n{self.steps[name]}\n{result.stdout}\n{result.stderr}"
        return result.stdout


def kinds_names(env: KubeEnv, objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(kind, name) of those objects that exist on the server."""
    present = set()
    for obj in objects:
        _, kind, namespace, name = object_id(obj)
        args = ["get", kind.lower(), name, "-o", "name"] + (["-n", namespace] if namespace else [])
        if env.kubectl(*args, check=False).returncode == 0:
            present.add((kind, name))
    return present


def container(obj: dict[str, Any]) -> dict[str, Any]:
    """The (only) container of a Deployment's or DaemonSet's Pods."""
    return dict(obj["spec"]["template"]["spec"]["containers"][0])


def stored_speaker(env: KubeEnv) -> dict[str, Any]:
    return container(get_json(env, "daemonset", "speaker", "-n", "metallb-system"))


def env_names(obj: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container(obj)["env"]}


def apply(env: KubeEnv, text: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return env.kubectl("apply", "-f", "-", input=text, check=check)


POOL = """apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: metallb-system}}
spec: {{addresses: [{addresses}]}}
"""
CONFIG = POOL.format(name="lan", addresses="203.0.113.10-203.0.113.13") + """---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: metallb-system}
data: {secretkey: """ + SECRET_KEY + """}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"""
SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  type: LoadBalancer
  ports: [{{port: 80, protocol: TCP}}]
"""


def install_metallb(env: KubeEnv) -> None:
    """MetalLB as it runs: its manifest, a configuration its webhook admitted, a Service its controller served.
    (kubectl 1.20 does not know the CEL fields of MetalLB's CRDs: --validate=false; the server drops them.)"""
    without_webhook = yaml.safe_dump_all([o for o in metallb_objects() if o["kind"] != WEBHOOK[0]])
    env.kubectl("apply", "--validate=false", "-f", "-", input=without_webhook)
    env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    apply(env, CONFIG)
    apply(env, SERVICE.format(name="served") + "---\n" + SERVICE.format(name="waiting"))
    env.patch_status("/api/v1/namespaces/shop/services/served", {"loadBalancer": {"ingress": [{"ip": "203.0.113.12"}]}})
    env.kubectl("annotate", "service", "-n", "shop", "served", "metallb.io/ip-allocated-from-pool=lan")
    env.kubectl("apply", "--validate=false", "-f", str(METALLB_MANIFEST))  # now the webhook too


def test_guide_names_its_steps() -> None:
    assert tuple(guide_steps(GUIDE.read_text())) == STEPS


def test_migration_as_the_guide_says(own_kube_env: KubeEnv, tmp_path: Path) -> None:
    env = own_kube_env
    theirs = metallb_objects()
    install_metallb(env)
    # MetalLB's controller is not running (as after step 2 in a real cluster): its webhook refuses every pool.
    refused = apply(env, POOL.format(name="later", addresses="203.0.113.20/32"), check=False)
    assert refused.returncode != 0 and "ipaddresspoolvalidationwebhook.metallb.io" in refused.stderr, refused

    shutil.copytree(DEPLOY_DIR, tmp_path / "deploy")
    guide = Guide(env, tmp_path)
    guide.run("backup")
    backup = (tmp_path / "metallb-config-backup.yaml").read_text()
    assert "name: lan" in backup and "203.0.113.10-203.0.113.13" in backup
    guide.run("remove-webhook")
    guide.run("install")

    migration = kustomize(env, KUSTOMIZE_DIR / "overlays" / "migration")
    ours = {(o["kind"], o["metadata"]["name"]) for o in migration}
    deleted = {("ValidatingWebhookConfiguration", "metallb-webhook-configuration"),
               ("Service", "metallb-webhook-service"), ("Secret", "metallb-webhook-cert")}
    # Every MetalLB object is now ours (same kind and name) or was deleted by the guide: nothing left behind.
    assert kinds_names(env, theirs) - ours == set()
    assert {(o["kind"], o["metadata"]["name"]) for o in theirs} - ours == deleted
    # apply replaced MetalLB's versions of the shared objects with ours, field for field where it matters.
    speaker = stored_speaker(env)
    assert speaker["image"] == "registry.example.com/metallb-fast:0.1.0"
    assert "--ml-timing=metallb" in speaker["args"]
    ml_labels = {e["name"]: e.get("value") for e in speaker["env"]}["METALLB_ML_LABELS"]
    assert ml_labels == "app=metallb,component=speaker"
    assert get_json(env, "deployment", "controller", "-n", "metallb-system")["spec"]["strategy"] == {
        "type": "Recreate"}
    rbac = {(o["kind"], o["metadata"]["name"]): o for o in manifest_objects(DEPLOY_DIR / "rbac.yaml")}
    stored_rules = get_json(env, "clusterrole", "metallb-system:controller")["rules"]
    assert stored_rules == rbac[("ClusterRole", "metallb-system:controller")]["rules"]
    crd = get_json(env, "crd", "bgppeers.metallb.io")
    assert crd["spec"]["conversion"] == {"strategy": "None"}  # MetalLB's conversion webhook is gone

    # Our controller, as its ServiceAccount: the held address is kept, the other Service gets one.
    controller = RunningController(env, memberlist_secret="memberlist", deployment="controller")
    try:
        assert wait_for(lambda: ingress(env, "shop", "waiting"), what="waiting's address") == ["203.0.113.10"]
        assert ingress(env, "shop", "served") == ["203.0.113.12"]
        assert "203.0.113.12" in guide.run("check")
        state = wait_for(lambda: get_json(env, "configurationstates", "-n", "metallb-system")["items"],
                         what="the controller's ConfigurationState")
        assert {s["metadata"]["name"]: s["status"]["result"] for s in state} == {"controller": "Valid"}
        # The speakers' shared key is MetalLB's, untouched.
        secret = get_json(env, "secret", "memberlist", "-n", "metallb-system")
        assert secret["data"] == {"secretkey": SECRET_KEY}
        # Pools can be created again.
        apply(env, POOL.format(name="later", addresses="203.0.113.20/32"))
        apply(env, SERVICE.format(name="third"))
        assert wait_for(lambda: ingress(env, "shop", "third"), what="third's address") == ["203.0.113.11"]
    finally:
        controller.stop()

    guide.run("finish")
    speaker = stored_speaker(env)
    assert "--ml-timing=fast" in speaker["args"]
    assert "METALLB_FAST_ON_SIGTERM" not in {e["name"] for e in speaker["env"]}

    # Rolling back. The 1.20 test server's kubectl does not know the CEL fields of MetalLB's CRDs, which a cluster
    # that ran MetalLB does: only for this server, its applies skip client-side validation.
    guide.run("rollback-timers")
    no_validation = 'kubectl() { command kubectl "$@" --validate=false; }\n'
    guide.run("rollback", prelude=no_validation)
    assert kinds_names(env, theirs) == {(o["kind"], o["metadata"]["name"]) for o in theirs}
    (their_speaker,) = [o for o in theirs if o["kind"] == "DaemonSet"]
    assert stored_speaker(env)["image"] == container(their_speaker)["image"]
    assert env_names(get_json(env, "daemonset", "speaker", "-n", "metallb-system")) == env_names(their_speaker)
    assert get_json(env, "crd", "bgppeers.metallb.io")["spec"]["conversion"]["strategy"] == "Webhook"
    # The configuration went through it all.
    assert ingress(env, "shop", "served") == ["203.0.113.12"]
    with pytest.raises(KubeEnvError, match="ipaddresspoolvalidationwebhook"):
        env.kubectl("apply", "-f", "-", input=POOL.format(name="after-rollback", addresses="203.0.113.30/32"))
    names = {p["metadata"]["name"] for p in get_json(env, "ipaddresspools", "-n", "metallb-system")["items"]}
    assert names == {"lan", "later"}


# ---- the compatibility table ----------------------------------------------------------------------------------


def _source(*parts: str) -> str:
    return "\n".join(p.read_text() for part in parts for p in sorted((REPO / "metallb_fast").glob(part)))


def test_compatibility_table_names_every_variable_metric_and_event() -> None:
    guide = GUIDE.read_text()
    programs = _source("commands/*.py", "membership/settings.py", "speaker/loop.py")
    env_vars = set(re.findall(r'"(METALLB_[A-Z_]+)"', programs))
    workloads = [o for o in (*manifest_objects(DEPLOY_DIR / "metallb-fast.yaml"), *metallb_objects())
                 if o["kind"] in ("Deployment", "DaemonSet")]
    env_vars |= {name for o in workloads for name in env_names(o)}
    metric_names = set(re.findall(r'"(metallb_[a-z0-9_]+)"', _source("obs/metrics.py")))
    reasons = set(re.findall(r'^[A-Z_]+ = "([^"]+)"$', _source("controller/events.py"), re.M)) - {"Normal", "Warning"}
    reasons |= set(re.findall(r'"(?:Normal|Warning)",\s*"([A-Za-z]+)"', _source("speaker/status.py")))
    reasons |= set(re.findall(r'INVALID_CONFIG_REASON = "([A-Za-z]+)"', _source("k8s/configsource.py")))
    assert env_vars and metric_names and len(reasons) > 10
    missing = sorted(name for name in env_vars | metric_names | reasons if f"`{name}`" not in guide)
    assert not missing, f"docs/migrating-from-metallb.md does not name: {', '.join(missing)}"
