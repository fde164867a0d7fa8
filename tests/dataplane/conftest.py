"""Lab fixtures for the responder tests: `metallb-fast respond` as a black box, the real client tools."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence

import pytest

from metallb_fast.lab import Lab
from metallb_fast.lab.tools import RespondFailed, RespondProcess, arping, ndisc, start_respond
from tests.conftest import require, require_root

__all__ = ["BACKENDS", "arping", "ndisc", "require_backend_loads", "respond"]

BACKENDS = ("xdp", "ring", "python")


def require_lab() -> None:
    require_root()
    for tool in ("ip", "arping", "ndisc6"):
        require(shutil.which(tool) is not None, f"the `{tool}` tool")


@pytest.fixture
def lab2() -> Iterator[Lab]:
    """One node with eth0 (LAN 0) and eth1 (LAN 1), one client on LAN 0."""
    require_lab()
    with Lab(nodes=1, clients=1, lans=2) as lab:
        yield lab


def require_backend_loads(backend: str, why: str) -> None:
    """A backend that cannot load here skips locally (fails in CI), like any other missing facility."""
    require(False, f"the {backend} responder backend ({why.strip()[-400:]})")


def respond(
    lab: Lab, netns: str, backend: str, interface: str, addresses: Sequence[str], extra: Sequence[str] = ()
) -> RespondProcess:
    try:
        return start_respond(lab, netns, backend, interface, addresses, extra=extra)
    except RespondFailed as exc:
        if "cannot load" in exc.stderr:
            require_backend_loads(backend, exc.stderr)
        raise
