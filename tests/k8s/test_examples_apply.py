"""Every example in examples/ is accepted by the API server with our CRDs (server-side dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.apply import dry_run_apply

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(EXAMPLES_DIR)) for p in EXAMPLES])
def test_example_applies(path: Path, kube_env: KubeEnv) -> None:
    output = dry_run_apply(kube_env, path)
    assert "(server dry run)" in output, output
