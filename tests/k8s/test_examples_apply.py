"""Every example in examples/ is accepted by the API server with our CRDs (server-side dry run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.apply import dry_run_apply

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


def as_served_by_1_20(document: Any) -> Any:
    """The test server (1.20) serves EndpointSlices only as discovery.k8s.io/v1beta1; production clusters (1.21+)
    serve v1, which the examples use. v1's endpoint fields map onto v1beta1 one to one, except `zone`."""
    if isinstance(document, dict) and document.get("apiVersion") == "discovery.k8s.io/v1":
        document = dict(document, apiVersion="discovery.k8s.io/v1beta1")
        endpoints = []
        for endpoint in document.get("endpoints") or []:
            endpoint = dict(endpoint)
            zone = endpoint.pop("zone", None)
            if zone:
                endpoint["topology"] = {**(endpoint.get("topology") or {}), "topology.kubernetes.io/zone": zone}
            endpoints.append(endpoint)
        document["endpoints"] = endpoints
    return document


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(EXAMPLES_DIR)) for p in EXAMPLES])
def test_example_applies(path: Path, kube_env: KubeEnv, tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    converted = [as_served_by_1_20(d) for d in documents]
    if converted != documents:
        path = tmp_path / path.name
        path.write_text(yaml.safe_dump_all(converted))
    output = dry_run_apply(kube_env, path)
    assert "(server dry run)" in output, output
