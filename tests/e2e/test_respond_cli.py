"""`metallb-fast respond` as an operator meets it: input errors, then a run that is interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from metallb_fast.lab import Lab
from metallb_fast.lab.tools import arping
from tests.dataplane.conftest import require_lab


def respond(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "metallb_fast.cli", "respond", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--interface", "no-such-if9", "--address", "192.0.2.200"], "'no-such-if9': no such interface"),
        (["--interface", "lo", "--address", "192.0.2.300"], "'192.0.2.300' is not an IPv4 or IPv6 address"),
        (["--interface", "lo", "--address", "2001:db8::1=02:aa:bb"], "MAC address '02:aa:bb'"),
        (["--interface", "lo", "--address", "192.0.2.1=zz:aa:bb:cc:dd:ee"], "'zz:aa:bb:cc:dd:ee'"),
        (["--interface", "lo"], "--address"),
        (["--interface", "lo", "--address", "192.0.2.1", "--backend", "dpdk"], "invalid choice: 'dpdk'"),
    ],
)
def test_bad_input_exits_2_naming_what_is_wrong(args: list[str], named: str) -> None:
    result = respond(*args)
    assert result.returncode == 2
    assert named in result.stderr
    assert result.stdout == ""


@pytest.mark.root
def test_interrupted_run_prints_counter_table() -> None:
    require_lab()
    with Lab() as lab:
        node, client = lab.nodes[0], lab.clients[0]
        argv = [
            sys.executable,
            "-m",
            "metallb_fast.cli",
            "respond",
            "--interface",
            "eth0",
            "--backend",
            "python",
            "--address",
            f"{lab.vip_v4(0)}=02:aa:bb:cc:dd:01",
            "--address",
            str(lab.vip_v6(0)),
        ]
        proc = lab.popen(node.netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert arping(lab, client.netns, lab.vip_v4(0), count=2) == [bytes.fromhex("02aabbccdd01")] * 2
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "backend: python"
    assert lines[1].split() == ["ADDRESS", "INTERFACE", "MAC", "REQUESTS", "REPLIES"]
    v4_row = lines[2].split()
    assert v4_row[:3] == [str(lab.vip_v4(0)), "eth0", "02:aa:bb:cc:dd:01"]
    assert int(v4_row[4]) == 2 and int(v4_row[3]) >= 2
    assert lines[3].split()[:3] == [str(lab.vip_v6(0)), "eth0", node.mac("eth0").hex(":")]
    assert lines[4].startswith("declined:")
