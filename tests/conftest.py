"""Shared test policy: tests that need root, netns, BPF or an API server fail (never skip) when CI=true."""

from __future__ import annotations

import os

import pytest

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
