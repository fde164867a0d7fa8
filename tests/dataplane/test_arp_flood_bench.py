"""bench/arp_flood.py end to end, shortened: it runs, measures every part it was asked for and reports targets.

Figures are not checked against any speed (timing never gates a test); what is checked is that each number the
bench reports was measured: replies arrived, the CPU counters moved, the legitimate client was heard.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require, require_root

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_flood_run_reports_every_part(tmp_path: Path) -> None:
    require_root()
    for tool in ("ip", "tc", "ethtool"):
        require(shutil.which(tool) is not None, f"the `{tool}` tool")
    report_path = tmp_path / "flood.json"
    argv = [
        sys.executable,
        str(ROOT / "bench" / "arp_flood.py"),
        "--duration",
        "0.5",
        "--scenarios",
        "sender-only,kernel,ring",
        "--parts",
        "capacity,legit",
        "--flood-actions",
        "",
        "--json",
        str(report_path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    runs = {(r["responder"], r["part"], r["kind"], r["sources"]): r for r in report["runs"]}
    assert {key[:3] for key in runs} == {
        *(("sender-only", "capacity", kind) for kind in ("arp", "ndp", "mixed")),
        *(("kernel", "capacity", kind) for kind in ("arp", "ndp", "mixed")),
        *(("ring", "capacity", kind) for kind in ("arp", "ndp", "mixed")),
        ("kernel", "legit", "arp"),
        ("ring", "legit", "arp"),
    }
    for (responder, part, kind, _sources), run in runs.items():
        assert run["error"] is None
        assert run["sent"] > 0 and run["delivered"] >= run["sent"]  # every frame sent reached the node
        assert run["core"]["total"] > 0
        if responder != "sender-only":
            assert run["replies"] > 0, (responder, part, kind)
            assert run["napi_ticks"] is not None
    assert runs["ring", "capacity", "arp", 64]["process_ticks"] is not None  # a process: its CPU is read
    assert runs["kernel", "capacity", "arp", 64]["process_ticks"] is None  # the kernel has none
    for sources in (1, 1000):
        probe = runs["kernel", "legit", "arp", sources]["probe"]
        assert probe["sent"] > 0 and probe["answered"] > 0 and probe["p50_ms"] is not None
    assert report["load_average_before"] and report["targets"]
    assert "targets (issue 11):" in done.stdout and "legitimate client during an ARP flood" in done.stdout
