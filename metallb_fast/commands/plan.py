"""`metallb-fast plan`: a dry run before `kubectl apply` (exit 0 valid, 2 invalid, every error listed)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import yaml

from metallb_fast.planning import DEFAULT_CLUSTER_FAMILIES, Plan, build_plan, plan_json

HELP = "show which addresses and pools the controller would assign, offline, from manifests"
EXIT_INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="multi-document YAML or JSON manifest (metallb.io objects, v1 Services and Namespaces); '-' reads stdin",
    )
    parser.add_argument("--lb-class", default=None, help="the controller's --lb-class (default: none)")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")
    parser.add_argument(
        "--cluster-ip-families",
        default=",".join(DEFAULT_CLUSTER_FAMILIES),
        help="the cluster's Service IP families, primary first, for Services without spec.clusterIPs "
        "(default: IPv4,IPv6; a single-stack cluster: IPv4 or IPv6)",
    )


def load_documents(paths: Iterable[str], stdin: TextIO | None = None) -> tuple[list[Any], list[str]]:
    """Every document of every file, in order, and the files that could not be read or parsed."""
    documents: list[Any] = []
    errors: list[str] = []
    for path in paths:
        try:
            text = (stdin or sys.stdin).read() if path == "-" else Path(path).read_text(encoding="utf-8")
            documents.extend(yaml.safe_load_all(text))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            errors.append(f"{path}: cannot read manifest: {err}")
    return documents, errors


def render_table(document: dict[str, Any]) -> str:
    lines: list[str] = []
    services = document["services"]
    rows = [(f"{s['namespace']}/{s['name']}", ",".join(s["ips"]) or "<none>", s["pool"] or "<none>") for s in services]
    headers = ("SERVICE", "IPS", "POOL")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for service, row in zip(services, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for event in service["events"]:
            lines.append(f"    {event['type']} {event['reason']}: {event['message']}")
    lines.append("")
    pool_headers = ("POOL", "IPv4 ASSIGNED", "IPv4 AVAILABLE", "IPv6 ASSIGNED", "IPv6 AVAILABLE")
    pool_rows = [
        (p["name"], str(p["assignedIPv4"]), str(p["availableIPv4"]), str(p["assignedIPv6"]), str(p["availableIPv6"]))
        for p in document["pools"]
    ]
    pool_widths = [max([len(h)] + [len(r[i]) for r in pool_rows]) for i, h in enumerate(pool_headers)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(pool_headers, pool_widths, strict=True)).rstrip())
    for row in pool_rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, pool_widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def parse_families(text: str) -> tuple[str, ...]:
    families = tuple(f.strip() for f in text.split(",") if f.strip())
    if not families or len(families) > 2 or len(set(families)) != len(families):
        raise ValueError(f"--cluster-ip-families {text!r}: give IPv4, IPv6, IPv4,IPv6 or IPv6,IPv4")
    for family in families:
        if family not in ("IPv4", "IPv6"):
            raise ValueError(f"--cluster-ip-families {text!r}: {family!r} is not IPv4 or IPv6")
    return families


def plan_document(
    paths: Iterable[str], lb_class: str | None, cluster_families: tuple[str, ...] = DEFAULT_CLUSTER_FAMILIES
) -> dict[str, Any]:
    documents, read_errors = load_documents(paths)
    if read_errors:
        return plan_json(Plan(valid=False, errors=read_errors))
    return plan_json(build_plan(documents, lb_class, cluster_families))


def run(args: argparse.Namespace) -> int:
    try:
        families = parse_families(args.cluster_ip_families)
    except ValueError as err:
        sys.stderr.write(f"metallb-fast plan: {err}\n")
        return EXIT_INVALID
    document = plan_document(args.files, args.lb_class, families)
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif document["valid"]:
        sys.stdout.write(render_table(document))
    else:
        sys.stderr.write("invalid configuration:\n" + "".join(f"  - {e}\n" for e in document["errors"]))
    return 0 if document["valid"] else EXIT_INVALID
