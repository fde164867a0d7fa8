"""Drive a lab from outside: `metallb-fast respond` in a node, the real arping / ndisc6 from a client."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import orjson

from metallb_fast.dataplane.packets import parse_mac
from metallb_fast.lab.probe import read_ready
from metallb_fast.lab.topology import Lab

READY_TIMEOUT_S = 60.0  # bcc compiles the XDP program at start: about a second, more on a busy machine


class RespondFailed(RuntimeError):
    """`metallb-fast respond` exited or never said "ready"; stderr is in the message."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


@dataclass
class RespondProcess:
    proc: subprocess.Popen[str]
    backend: str

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the JSON counters it prints on the way out."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        if self.proc.returncode != 0:
            raise RespondFailed(f"respond ({self.backend}) exited {self.proc.returncode}: {err.strip()}", err)
        return dict(orjson.loads(out.strip().splitlines()[-1]))


def start_respond(
    lab: Lab,
    netns: str,
    backend: str,
    interface: str,
    addresses: Sequence[str],
    extra: Sequence[str] = (),
    timeout: float = READY_TIMEOUT_S,
) -> RespondProcess:
    """Start `metallb-fast respond --json` inside `netns` and wait until it prints "ready"."""
    argv = [sys.executable, "-m", "metallb_fast.cli", "respond", "--interface", interface, "--backend", backend]
    for address in addresses:
        argv += ["--address", address]
    proc = lab.popen(netns, [*argv, "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if read_ready(proc, timeout):
        return RespondProcess(proc, backend)
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise RespondFailed(f"respond ({backend}) never became ready (exit {proc.returncode}): {err.strip()}", err)


_ARPING_REPLY = re.compile(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]")
_NDISC_TARGET = re.compile(r"Target link-layer address: ([0-9A-Fa-f:]{17})")


def arping(lab: Lab, netns: str, address: IPv4Address, count: int = 2, wait_s: int = 3) -> list[bytes]:
    """The MACs in the ARP replies iputils arping received on eth0 (one per reply)."""
    argv = ["arping", "-c", str(count), "-w", str(wait_s), "-I", "eth0", str(address)]
    result = lab.run(netns, argv, check=False, timeout=wait_s + 10)
    return [parse_mac(mac) for mac in _ARPING_REPLY.findall(result.stdout)]


def ndisc(lab: Lab, netns: str, address: IPv6Address, tries: int = 3) -> bytes | None:
    """The target link-layer address in the Neighbor Advertisement ndisc6 received on eth0, if any."""
    result = lab.run(netns, ["ndisc6", "-1", "-r", str(tries), str(address), "eth0"], check=False, timeout=tries + 10)
    found = _NDISC_TARGET.search(result.stdout)
    return parse_mac(found.group(1)) if found else None
