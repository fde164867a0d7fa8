"""Our CRDs against MetalLB's: the same objects must be accepted (pure), and a real API server must take them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metallb_fast.testing.kubeenv import KubeEnv, KubeEnvError
from tests.conftest import require
from tests.k8s.crd_compare import OURS_DIR, REFERENCE_DIR, crd_differences, load_crds

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = load_crds(REFERENCE_DIR) if REFERENCE_DIR.is_dir() else {}
OURS = load_crds(OURS_DIR)


def _require_reference() -> None:
    require(bool(REFERENCE), f"MetalLB's reference CRDs ({REFERENCE_DIR})")


# ---- pure ---------------------------------------------------------------------------------------------------------


def test_every_reference_kind_has_our_crd() -> None:
    _require_reference()
    assert sorted(OURS) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(OURS))
def test_schema_matches_reference(name: str) -> None:
    _require_reference()
    differences = crd_differences(OURS[name], REFERENCE[name])
    assert not differences, "\n".join(differences)


def test_no_construct_a_1_20_server_lacks() -> None:
    # CEL arrived in 1.25 and 1.20 drops unknown schema keys silently, so a rule here would look enforced but not be.
    for name, crd in OURS.items():
        assert "x-kubernetes-validations" not in json.dumps(crd), name
        assert crd["spec"].get("conversion", {}).get("strategy", "None") == "None", name


def test_crd_files_are_what_the_generator_writes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-manifests.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _schema_of(crd: dict[str, Any], version: str) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("mutation", ["type", "enum", "required", "default", "new field", "storage"])
def test_comparison_reports_each_kind_of_difference(mutation: str) -> None:
    _require_reference()
    theirs = REFERENCE["bgppeers.metallb.io"]
    ours = copy.deepcopy(theirs)
    spec = _schema_of(ours, "v1beta2")["properties"]["spec"]
    match mutation:
        case "type":
            spec["properties"]["peerPort"]["type"] = "string"
        case "enum":
            spec["properties"]["dynamicASN"]["enum"].remove("external")
        case "required":
            spec["required"].append("peerAddress")
        case "default":
            del spec["properties"]["peerPort"]["default"]
        case "new field":
            spec["properties"]["bogus"] = {"type": "string"}
        case "storage":
            ours["spec"]["versions"][0]["storage"] = True
    differences = crd_differences(ours, theirs)
    assert len(differences) == 1, differences
    # Descriptions never count.
    spec["description"] = "something else entirely"
    assert len(crd_differences(ours, theirs)) == 1


# ---- against the API server ---------------------------------------------------------------------------------------

# One object per kind (and per BGPPeer version), using fields across each schema.
SAMPLES: dict[str, dict[str, Any]] = {
    "IPAddressPool": {
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "sample"},
        "spec": {"addresses": ["192.0.2.0/28", "2001:db8::1-2001:db8::10"],
                 "serviceAllocation": {"priority": 10, "namespaces": ["default"],
                                       "serviceSelectors": [{"matchLabels": {"app": "web"}}]}},
    },
    "L2Advertisement": {
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "sample"},
        "spec": {"ipAddressPools": ["sample"], "interfaces": ["eth0"],
                 "nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}],
                 "preferredNodeSelectors": [{"weight": 50, "preference": {"matchLabels": {"rack": "1"}}}]},
    },
    "BGPAdvertisement": {
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "sample"},
        "spec": {"ipAddressPools": ["sample"], "communities": ["65535:65282"], "localPref": 100,
                 "peers": ["sample"]},
    },
    "BGPPeer/v1beta2": {
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "sample"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "holdTime": "90s",
                 "passwordSecret": {"name": "bgp-secret"}, "dynamicASN": "external"},
    },
    "BGPPeer/v1beta1": {
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "sample-old"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.2", "peerPort": 1179},
    },
    "Community": {
        "apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "sample"},
        "spec": {"communities": [{"name": "no-advertise", "value": "65535:65282"}]},
    },
    "BFDProfile": {
        "apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": {"name": "sample"},
        "spec": {"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3, "echoMode": False},
    },
    "ServiceL2Status": {
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status", "metadata": {"name": "sample"},
        "status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "default",
                   "interfaces": [{"name": "eth0"}]},
    },
    "ServiceBGPStatus": {
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus", "metadata": {"name": "sample"},
        "status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "default", "peers": ["sample"]},
    },
    "ConfigurationState": {
        "apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState", "metadata": {"name": "sample"},
        "status": {"result": "Invalid", "errorSummary": "pool sample: overlaps pool other",
                   "conditions": [{"type": "Ready", "status": "False", "reason": "ConfigInvalid", "message": "",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    },
}


def _get(kube_env: KubeEnv, namespace: str, resource: str) -> dict[str, Any]:
    return json.loads(kube_env.kubectl("get", "-n", namespace, resource, "-o", "json").stdout)


def _plural(kind: str) -> str:
    return next(c["spec"]["names"]["plural"] for c in OURS.values() if c["spec"]["names"]["kind"] == kind)


def _submit(kube_env: KubeEnv, namespace: str, manifest: dict[str, Any]) -> None:
    """Create with kubectl, then write .status through the status subresource: with that subresource enabled the
    server drops .status from a create (kubectl 1.20 cannot address subresources, so the client does it)."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    body = {k: v for k, v in manifest.items() if k != "status"}
    kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    if "status" not in manifest:
        return
    group, version = manifest["apiVersion"].split("/")
    name = manifest["metadata"]["name"]
    with kube_env.api_client() as client:
        api = CustomObjectsApi(client)
        current = json.loads(api.get_namespaced_custom_object(group, version, namespace, _plural(manifest["kind"]),
                                                              name, _preload_content=False).data)
        current["status"] = manifest["status"]
        try:
            api.replace_namespaced_custom_object_status(group, version, namespace, _plural(manifest["kind"]), name,
                                                        current, _preload_content=False)
        except ApiException as e:
            raise KubeEnvError(f"status of {manifest['kind']} {name}: {e.body}") from e


def test_every_crd_is_established_and_serves_its_versions(kube_env: KubeEnv) -> None:
    crds = json.loads(kube_env.kubectl("get", "crd", "-o", "json").stdout)["items"]
    by_name = {c["metadata"]["name"]: c for c in crds}
    for name, ours in OURS.items():
        assert name in by_name, f"{name} not applied"
        conditions = {c["type"]: c["status"] for c in by_name[name]["status"]["conditions"]}
        assert conditions.get("Established") == "True", f"{name}: {conditions}"
        assert conditions.get("NonStructuralSchema") != "True", f"{name}: {conditions}"
        served = sorted(v["name"] for v in by_name[name]["spec"]["versions"] if v["served"])
        assert served == sorted(v["name"] for v in ours["spec"]["versions"])
    resources = kube_env.kubectl("api-resources", "--api-group=metallb.io", "-o", "name").stdout.split()
    assert sorted(r.split(".")[0] for r in resources) == sorted(c["spec"]["names"]["plural"] for c in OURS.values())


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_sample_object_is_accepted(sample: str, kube_env: KubeEnv, kube_namespace: str) -> None:
    manifest = SAMPLES[sample]
    _submit(kube_env, kube_namespace, manifest)
    plural = _plural(manifest["kind"])
    version = manifest["apiVersion"].split("/")[1]
    stored = _get(kube_env, kube_namespace, f"{plural}.{version}.metallb.io/{manifest['metadata']['name']}")
    # Pruning would drop any field our schema lacks: everything we sent must come back.
    for part in ("spec", "status"):
        for key, value in manifest.get(part, {}).items():
            assert stored[part][key] == value, f"{sample}: {part}.{key}"


def test_defaults_are_applied(kube_env: KubeEnv, kube_namespace: str) -> None:
    for kind in ("IPAddressPool", "BGPPeer/v1beta2", "BGPAdvertisement"):
        _submit(kube_env, kube_namespace, SAMPLES[kind])
    pool = _get(kube_env, kube_namespace, "ipaddresspools/sample")["spec"]
    assert (pool["autoAssign"], pool["avoidBuggyIPs"]) == (True, False)
    peer = _get(kube_env, kube_namespace, "bgppeers.v1beta2.metallb.io/sample")["spec"]
    assert (peer["peerPort"], peer["disableMP"], peer["dualStackAddressFamily"]) == (179, False, False)
    adv = _get(kube_env, kube_namespace, "bgpadvertisements/sample")["spec"]
    assert (adv["aggregationLength"], adv["aggregationLengthV6"]) == (32, 128)


def test_bgppeer_v1beta1_object_reads_as_v1beta2(kube_env: KubeEnv, kube_namespace: str) -> None:
    _submit(kube_env, kube_namespace, SAMPLES["BGPPeer/v1beta1"])
    as_v2 = _get(kube_env, kube_namespace, "bgppeers.v1beta2.metallb.io/sample-old")
    assert as_v2["apiVersion"] == "metallb.io/v1beta2"
    assert as_v2["spec"]["peerAddress"] == "198.51.100.2"
    assert as_v2["spec"]["peerPort"] == 1179


@pytest.mark.parametrize(("kind", "path", "value", "complaint"), [
    ("IPAddressPool", ("spec", "addresses"), None, "addresses"),
    ("BGPPeer/v1beta2", ("spec", "dynamicASN"), "sometimes", "dynamicASN"),
    ("BGPPeer/v1beta2", ("spec", "peerPort"), 70000, "peerPort"),
    ("BGPPeer/v1beta2", ("spec", "myASN"), None, "myASN"),
    ("BFDProfile", ("spec", "detectMultiplier"), 1, "detectMultiplier"),
    ("L2Advertisement", ("spec", "interfaces"), "eth0", "interfaces"),
    ("ConfigurationState", ("status", "result"), "Fine", "result"),
])
def test_invalid_object_is_rejected(kind: str, path: tuple[str, str], value: object, complaint: str,
                                    kube_env: KubeEnv, kube_namespace: str) -> None:
    manifest = copy.deepcopy(SAMPLES[kind])
    if value is None:
        del manifest[path[0]][path[1]]
    else:
        manifest[path[0]][path[1]] = value
    with pytest.raises(KubeEnvError, match=complaint):
        _submit(kube_env, kube_namespace, manifest)
