"""Lab helpers for the responder tests: the `metallb-fast respond` CLI as a black box, and the real client tools."""

from __future__ import annotations

import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import orjson
import pytest

from metallb_fast.dataplane.packets import parse_mac
from metallb_fast.lab import Lab
from tests.conftest import require, require_root

BACKENDS = ("xdp", "ring", "python")
READY_TIMEOUT_S = 60.0  # bcc compiles the XDP program on start (about a second, more on a busy machine)


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


@dataclass
class RespondProcess:
    proc: subprocess.Popen[str]
    backend: str

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the JSON counters it prints on the way out."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, f"respond ({self.backend}) exited {self.proc.returncode}: {err}"
        return orjson.loads(out.strip().splitlines()[-1])


def start_respond(
    lab: Lab, netns: str, backend: str, interface: str, addresses: Sequence[str], extra: Sequence[str] = ()
) -> RespondProcess:
    argv = [sys.executable, "-m", "metallb_fast.cli", "respond", "--interface", interface, "--backend", backend]
    for address in addresses:
        argv += ["--address", address]
    proc = lab.popen(netns, [*argv, "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                line = proc.stdout.readline()
                if line.strip() == "ready":
                    return RespondProcess(proc, backend)
                if line == "":
                    break
    proc.kill()
    out, err = proc.communicate(timeout=10)
    if "cannot load" in err:
        require_backend_loads(backend, err)
    pytest.fail(f"respond ({backend}) never became ready (exit {proc.returncode}): {out}\n{err}")


_ARPING_REPLY = re.compile(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]")
_NDISC_TARGET = re.compile(r"Target link-layer address: ([0-9A-Fa-f:]{17})")


def arping(lab: Lab, netns: str, address: IPv4Address, count: int = 2, wait_s: int = 3) -> list[bytes]:
    """The MACs in the ARP replies the real iputils arping received (one per reply)."""
    result = lab.run(netns, ["arping", "-c", str(count), "-w", str(wait_s), "-I", "eth0", str(address)], check=False)
    return [parse_mac(mac) for mac in _ARPING_REPLY.findall(result.stdout)]


def ndisc(lab: Lab, netns: str, address: IPv6Address, tries: int = 3) -> bytes | None:
    """The target link-layer address of the Neighbor Advertisement the real ndisc6 received, if any."""
    result = lab.run(netns, ["ndisc6", "-1", "-r", str(tries), str(address), "eth0"], check=False)
    found = _NDISC_TARGET.search(result.stdout)
    return parse_mac(found.group(1)) if found else None
