"""`metallb-fast demo --cluster` (the second half of `make demo`): the examples on a whole cluster, each address
resolved by the client to the MAC of the node `plan` names, and nothing left behind."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from pyroute2 import netns

from metallb_fast.testing.kubeenv import KubeBinaries
from tests.conftest import require, require_root

MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"


def test_cluster_demo_answers_every_announced_address() -> None:
    require_root()
    for tool in ("ip", "arping", "ndisc6"):
        require(shutil.which(tool) is not None, f"the `{tool}` tool")
    require(not KubeBinaries.find().missing(), "the Kubernetes binaries (make kube)")
    result = subprocess.run(
        [sys.executable, "-m", "metallb_fast.cli", "demo", "--cluster"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(rf"^(\S+)\s+(\S+/\S+)\s+(\S+)\s+(node\d)\s+({MAC})\s+ok$", result.stdout, re.M)
    examples = {row[0] for row in rows}
    assert examples == {"ipv4", "ipv6", "dual-stack", "sharing"}, result.stdout
    assert len(rows) >= 20, result.stdout
    assert not re.search(r"FAILED", result.stdout)
    # Both families were proven by the real tools.
    assert any(":" in row[2] for row in rows) and any("." in row[2] for row in rows)
    prefix = re.search(r"lab (mlbf-\S+-):", result.stdout)
    assert prefix, result.stdout
    assert [n for n in netns.listnetns() if n.startswith(prefix.group(1))] == []
