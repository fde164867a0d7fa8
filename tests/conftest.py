"""Shared test policy: tests that need root, netns, BPF or an API server fail (never skip) when CI=true."""

from __future__ import annotations

import os

import pytest

# The Kubernetes fixtures (kube_env, kube_controller_manager, kubectl, kube_client, kube_namespace) for every test
# directory; they start nothing until a test asks for them.
pytest_plugins = ("tests.k8s.fixtures",)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip locally when `what` is missing; in CI the same absence is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {what} is missing", pytrace=False)
    pytest.skip(f"{what} is missing")


def require_root() -> None:
    require(os.geteuid() == 0, "root (CAP_NET_ADMIN, CAP_BPF)")
