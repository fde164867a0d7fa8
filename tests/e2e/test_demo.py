"""`make demo` (metallb-fast demo): every example address answered, nothing left behind."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from ipaddress import ip_address

import orjson
import pytest
from pyroute2 import IPRoute, netns

from metallb_fast.lab import Lab
from tests.conftest import require, require_root

MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"


def require_demo_tools() -> None:
    require_root()
    for tool in ("ip", "arping", "ndisc6", "bpftool"):
        require(shutil.which(tool) is not None, f"the `{tool}` tool")


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metallb_fast.cli", "demo", *args], capture_output=True, text=True, timeout=240
    )


def assert_nothing_left(prefix: str, prog_ids: list[int]) -> None:
    assert [n for n in netns.listnetns() if n.startswith(prefix)] == []
    with IPRoute() as ipr:
        assert [link.get("ifname") for link in ipr.get_links() if link.get("ifname", "").startswith(prefix)] == []
    for prog_id in prog_ids:
        shown = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, check=False)
        assert shown.returncode != 0, f"XDP program {prog_id} is still loaded after the demo"


@pytest.mark.root
def test_demo_table_proves_every_address_and_tears_down() -> None:
    require_demo_tools()
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = re.search(r"^lab: (mlbf-\S+-) \(", result.stdout, re.M)
    assert prefix, result.stdout
    rows = re.findall(rf"^(\S+)\s+({MAC})\s+(xdp|ring|python)\s+(\d+)\s+(\d+)\s+ok$", result.stdout, re.M)
    addresses = [ip_address(row[0]) for row in rows]
    assert {a.version for a in addresses} == {4, 6}, result.stdout
    assert len(rows) == 4, result.stdout
    for address, _mac, _backend, requests, replies in rows:
        assert int(replies) >= 1 and int(requests) >= int(replies), address
    prog_ids = [int(i) for i in re.findall(r"^xdp program (\d+) was attached", result.stdout, re.M)]
    if rows[0][2] == "xdp":
        assert prog_ids, "the xdp backend reports where it attached"
    assert_nothing_left(prefix.group(1), prog_ids)


@pytest.mark.root
def test_demo_json_with_python_backend() -> None:
    require_demo_tools()
    result = run_demo("--backend", "python", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = orjson.loads(result.stdout)
    assert [row["ok"] for row in document["rows"]] == [True] * 4
    assert {row["backend"] for row in document["rows"]} == {"python"}
    assert all(row["mac_seen"] == row["expected_mac"] for row in document["rows"])
    assert document["attachments"] == [] and document["programs_left"] == []
    assert_nothing_left(document["lab"], [])


LAB_SCRIPT = """
import sys, time
from metallb_fast.lab import Lab
with Lab(nodes=1, clients=1) as lab:
    print(lab.prefix, flush=True)
    time.sleep(120)
"""


def _start_lab_process() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", LAB_SCRIPT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    prefix = proc.stdout.readline().strip()
    assert prefix.startswith("mlbf-"), prefix
    assert [n for n in netns.listnetns() if n.startswith(prefix)], "the lab exists while its owner runs"
    return proc, prefix


@pytest.mark.root
def test_lab_tears_down_on_sigterm() -> None:
    require_root()
    proc, prefix = _start_lab_process()
    proc.terminate()
    proc.wait(timeout=30)
    assert_nothing_left(prefix, [])


@pytest.mark.root
def test_lab_killed_outright_is_removed_by_the_next_lab() -> None:
    require_root()
    proc, prefix = _start_lab_process()
    proc.kill()
    proc.wait(timeout=30)
    assert [n for n in netns.listnetns() if n.startswith(prefix)], "SIGKILL leaves the namespaces behind"
    with Lab(nodes=0, clients=1):
        assert_nothing_left(prefix, [])
