"""`metallb-fast status`: each LoadBalancer Service of a running cluster, its address(es), pool, announcing node
and interfaces (the speakers' ServiceL2Status), the layer-2 counters (`--scrape`: the speakers' /metrics), and,
when it has no address or nobody announces it, why, as `plan` explains it: the cluster is read as `plan` reads
manifests (planning.build_plan, explain_plan), with the Ready Nodes as the election's candidates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from metallb_fast.commands.common import add_namespace_argument

HELP = "show each LoadBalancer Service's address, pool, announcing node, interfaces and counters, and why not"
DEFAULT_METRICS_PORT = 7472
EXIT_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, else ~/.kube/config)")
    add_namespace_argument(parser)
    parser.add_argument("--lb-class", default=None, help="the controller's and speakers' --lb-class (default: none)")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")
    parser.add_argument(
        "--scrape",
        action="store_true",
        help="read each announcing speaker's layer-2 counters from its metrics endpoint (its Pod's address, the "
        "host's; needs network access to the nodes)",
    )
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="the speakers' --metrics-port")
    parser.add_argument("--speaker-selector", default=None, help="label selector of the speaker Pods "
                        "(default: app=metallb,component=speaker)")
    parser.add_argument("--scrape-timeout", type=float, default=2.0, help="seconds per speaker (default: 2)")


def _why_unassigned(planned: Mapping[str, Any]) -> str:
    if planned.get("ips"):
        return (f"no address assigned yet; the controller would assign {', '.join(planned['ips'])} from pool "
                f"{planned.get('pool') or '?'} (is it running, with this --lb-class?)")
    warnings = [f"{e['reason']}: {e['message']}" for e in planned.get("events") or [] if e["type"] == "Warning"]
    return "no address assigned: " + ("; ".join(warnings) if warnings else "the controller leaves it alone")


def service_status(
    actual: Mapping[str, Any],
    planned: Mapping[str, Any],
    explanation: Mapping[str, Any],
    nobody: str | None,
    statuses: list[Any],
    counters: Mapping[str, Mapping[str, tuple[float, float]]] | None,
) -> dict[str, Any]:
    """One Service's entry (the JSON shape; the table prints the same): what the cluster holds, and `why` when
    it has no address or no announcing node. `planned` and `explanation` are plan's JSON entry for it."""
    entry: dict[str, Any] = {
        "namespace": actual["namespace"],
        "name": actual["name"],
        "ips": actual["ips"],
        "pool": actual["pool"],
        "announcedBy": [{"node": s.node, "interfaces": list(s.interfaces)} for s in statuses],
        "expected": explanation,
        "events": planned.get("events") or [],
        "why": None,
    }
    if not actual["ips"]:
        entry["why"] = _why_unassigned(planned)
    elif not statuses:
        winners = sorted({a["node"] for a in explanation.get("announcements") or [] if a.get("node")})
        if nobody:
            entry["why"] = f"not announced: {nobody}"
        elif winners:
            entry["why"] = (f"not announced: the election picks {', '.join(winners)}, which wrote no ServiceL2Status "
                            "(is its speaker running, and a live memberlist member?)")
        else:
            entry["why"] = "not announced"
    if counters is not None:
        per_ip: dict[str, dict[str, float]] = {}
        for status in statuses:
            for ip, (requests, responses) in (counters.get(status.node) or {}).items():
                if ip in actual["ips"]:
                    per_ip[ip] = {"requests": requests, "responses": responses}
        entry["counters"] = per_ip
    return entry


def render(entries: list[dict[str, Any]], scraped: bool) -> str:
    from metallb_fast.texttable import render_table

    headers = ["SERVICE", "IPS", "POOL", "NODE", "INTERFACES"] + (["REQUESTS", "RESPONSES"] if scraped else [])
    rows = []
    for e in entries:
        row = [f"{e['namespace']}/{e['name']}", ",".join(e["ips"]) or "<none>", e["pool"] or "<none>",
               ",".join(a["node"] for a in e["announcedBy"]) or "<none>",
               ";".join(",".join(a["interfaces"]) or "all" for a in e["announcedBy"]) or "-"]
        if scraped:
            counts = e.get("counters") or {}
            row += [",".join(f"{int(counts[ip]['requests'])}" for ip in e["ips"] if ip in counts) or "-",
                    ",".join(f"{int(counts[ip]['responses'])}" for ip in e["ips"] if ip in counts) or "-"]
        rows.append(row)
    header, *lines = render_table([headers, *rows]).splitlines()
    out = [header]
    for entry, line in zip(entries, lines, strict=True):
        out.append(line)
        if entry["why"]:
            out.append(f"    {entry['why']}")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from metallb_fast.commands import cluster_read
    from metallb_fast.commands.plan import plan_document
    from metallb_fast.commands.startup import StartupError, connect
    from metallb_fast.k8s.client import ApiError
    from metallb_fast.planning import PlannedService, build_plan, explain_plan, service_entry
    from metallb_fast.resources import Service

    try:
        client = connect(args.kubeconfig, reach_timeout_s=0)
    except StartupError as error:
        sys.stderr.write(f"metallb-fast status: {error}\n")
        return EXIT_FAILED
    try:
        documents = cluster_read.cluster_documents(client, args.namespace)
        statuses = cluster_read.l2_statuses(client, args.namespace)
        endpoints = (cluster_read.speaker_endpoints(client, args.namespace,
                                                    args.speaker_selector or cluster_read.SPEAKER_LABELS)
                     if args.scrape else {})
    except ApiError as error:
        sys.stderr.write(f"metallb-fast status: reading the cluster: {error}\n")
        return EXIT_FAILED
    finally:
        client.close()
    plan = build_plan(documents, args.lb_class, namespace=args.namespace)
    if not plan.valid:
        sys.stderr.write("metallb-fast status: the cluster's configuration is invalid (the programs keep their last "
                         "valid one):\n" + "".join(f"  - {e}\n" for e in plan.errors))
        return EXIT_FAILED
    ready = {name for name, node in plan.nodes.items() if node.condition_is_true("Ready")}
    explanations = explain_plan(plan, args.lb_class, live_nodes=ready)
    planned = {f"{s['namespace']}/{s['name']}": s for s in plan_document(plan, explanations)["services"]}
    actual = [Service.from_dict(d) for d in documents if d.get("kind") == "Service"]
    scraped = None
    if args.scrape:
        announcing = {s.node for found in statuses.values() for s in found}
        result = cluster_read.scrape(endpoints, announcing, args.metrics_port, args.scrape_timeout)
        for problem in result.problems:
            sys.stderr.write(f"metallb-fast status: warning: cannot scrape {problem}\n")
        scraped = result.counters
    entries = []
    for service in actual:
        if service.type != "LoadBalancer":
            continue
        mine = service_entry(PlannedService(service, handled=True))  # the cluster's state, in plan's shape
        explanation = explanations.get(service.key)
        entries.append(service_status(
            mine, planned.get(service.key) or {}, explanation.as_dict() if explanation else {},
            explanation.nobody if explanation else None, statuses.get(service.key, []), scraped))
    if args.output == "json":
        sys.stdout.write(json.dumps({"services": entries}, indent=2) + "\n")
    else:
        sys.stdout.write(render(entries, scraped is not None))
    return 0
