"""Tests against a real kube-apiserver; the fixtures live in tests/k8s/fixtures.py (a plugin of tests/conftest.py)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not kube"` deselects whatever needs the API server, wherever the test lives.
    for item in items:
        if "kube_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)
