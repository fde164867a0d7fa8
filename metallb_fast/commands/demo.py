"""`metallb-fast demo`: a throw-away lab where a node answers for example addresses and a client proves it.

The node runs `metallb-fast respond` (auto backend: XDP where it loads); the client asks with the real `arping`
and `ndisc6`. Everything is torn down at the end; the exit status is non-zero if any address went unanswered.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TextIO

import orjson

from metallb_fast.dataplane.backends import CHOICES
from metallb_fast.dataplane.base import IPAddress
from metallb_fast.dataplane.packets import format_mac
from metallb_fast.lab import Lab
from metallb_fast.lab.tools import RespondFailed, arping, ndisc, start_respond
from metallb_fast.texttable import render_table

HELP = "build a network-namespace lab, announce example addresses, prove them with arping/ndisc6"
EXAMPLES_PER_FAMILY = 2
TOOLS = ("ip", "arping", "ndisc6")


@dataclass(frozen=True)
class Row:
    address: IPAddress
    expected_mac: bytes
    seen_mac: bytes | None  # what the client learned; None = no answer
    backend: str
    requests: int
    replies: int

    @property
    def ok(self) -> bool:
        return self.seen_mac == self.expected_mac and self.replies > 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=CHOICES, default="auto", help="responder backend (default: auto)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the whole program: a real API server, the controller and a speaker per node; applies examples/",
    )


def run(args: argparse.Namespace) -> int:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"metallb-fast demo: missing tools {', '.join(missing)} (run `make install`)", file=sys.stderr)
        return 2
    if args.cluster:
        return run_cluster(args.backend)
    log = sys.stderr if args.json else sys.stdout
    with Lab(nodes=1, clients=1) as lab:
        print(f"lab: {lab.prefix} (namespaces {', '.join(lab.namespaces)})", file=log, flush=True)
        rows, attachments = prove(lab, args.backend, log)
    print(f"lab: {lab.prefix} torn down", file=log, flush=True)
    leftovers = [a["prog_id"] for a in attachments if program_loaded(int(a["prog_id"]))]
    if args.json:
        document = {
            "lab": lab.prefix,
            "rows": [_row_document(r) for r in rows],
            "attachments": attachments,
            "programs_left": leftovers,
        }
        sys.stdout.write(orjson.dumps(document).decode() + "\n")
    else:
        print_table(rows, sys.stdout)
        for a in attachments:
            state = "STILL LOADED" if a["prog_id"] in leftovers else "now unloaded"
            print(f"xdp program {a['prog_id']} was attached to node0 {a['interface']} ({a['mode']} mode): {state}")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"metallb-fast demo: {r.address} was not answered with {format_mac(r.expected_mac)}", file=sys.stderr)
    return 1 if failed or not rows or leftovers else 0


def run_cluster(backend: str) -> int:
    from metallb_fast.lab.cluster_demo import print_cluster_table, run_cluster_demo
    from metallb_fast.testing.kubeenv import KubeBinaries

    missing = KubeBinaries.find().missing()
    if missing:
        print(f"metallb-fast demo --cluster: missing {', '.join(missing)} (run `make kube`)", file=sys.stderr)
        return 2
    rows = run_cluster_demo(backend, sys.stdout)
    print()
    print_cluster_table(rows, sys.stdout)
    failed = [r for r in rows if not r.ok]
    for r in failed:
        message = f"{r.service} {r.address}: expected {r.expected_mac}, saw {r.seen_mac}"
        print(f"metallb-fast demo: {message}", file=sys.stderr)
    return 1 if failed or not rows else 0


def program_loaded(prog_id: int) -> bool:
    """Whether a BPF program with this id still exists (bpftool exits non-zero for an unknown id)."""
    if shutil.which("bpftool") is None:
        return False
    result = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, check=False)
    return result.returncode == 0


def prove(lab: Lab, backend: str, log: TextIO) -> tuple[list[Row], list[dict[str, Any]]]:
    """Announce the examples on node0 eth0, ask for each from client0, collect the responder's counters."""
    node, client = lab.nodes[0], lab.clients[0]
    mac = node.mac("eth0")
    addresses: list[IPAddress] = [lab.vip_v4(i) for i in range(EXAMPLES_PER_FAMILY)]
    addresses += [lab.vip_v6(i) for i in range(EXAMPLES_PER_FAMILY)]
    print(
        f"node0: respond --backend {backend} on eth0 ({format_mac(mac)}) for {', '.join(map(str, addresses))}",
        file=log,
        flush=True,
    )
    try:
        responder = start_respond(lab, node.netns, backend, "eth0", [str(a) for a in addresses], ["--announce"])
    except RespondFailed as exc:
        print(f"metallb-fast demo: the responder did not start: {exc}", file=sys.stderr)
        return [], []
    seen: dict[IPAddress, bytes | None] = {}
    for address in addresses:
        if isinstance(address, IPv4Address):
            macs = arping(lab, client.netns, address, count=3, wait_s=5)
            seen[address] = macs[0] if macs and all(m == macs[0] for m in macs) else None
            tool = f"arping: {len(macs)} replies"
        else:
            assert isinstance(address, IPv6Address)
            seen[address] = ndisc(lab, client.netns, address, tries=3)
            tool = "ndisc6: " + ("advertisement received" if seen[address] else "no advertisement")
        answered = seen[address]
        print(
            f"client0: {address} -> {format_mac(answered) if answered else '-'} ({tool})",
            file=log,
            flush=True,
        )
    try:
        counters = responder.stop()
    except RespondFailed as exc:
        print(f"metallb-fast demo: the responder failed: {exc}", file=sys.stderr)
        return [], []
    by_address = {row["address"]: row for row in counters["addresses"]}
    rows = [
        Row(
            address=address,
            expected_mac=mac,
            seen_mac=seen[address],
            backend=str(counters["backend"]),
            requests=int(by_address.get(str(address), {}).get("requests", 0)),
            replies=int(by_address.get(str(address), {}).get("replies", 0)),
        )
        for address in addresses
    ]
    return rows, list(counters.get("attachments", []))


def _row_document(row: Row) -> dict[str, Any]:
    return {
        "address": str(row.address),
        "mac_seen": format_mac(row.seen_mac) if row.seen_mac else None,
        "expected_mac": format_mac(row.expected_mac),
        "backend": row.backend,
        "requests": row.requests,
        "replies": row.replies,
        "ok": row.ok,
    }


def print_table(rows: Sequence[Row], out: TextIO) -> None:
    table = [("ADDRESS", "MAC SEEN BY CLIENT", "BACKEND", "REQUESTS", "REPLIES", "RESULT")]
    for r in rows:
        seen = format_mac(r.seen_mac) if r.seen_mac else "-"
        table.append((str(r.address), seen, r.backend, str(r.requests), str(r.replies), "ok" if r.ok else "FAILED"))
    out.write(render_table(table))
    out.flush()
