"""`metallb-fast plan`: a dry run before `kubectl apply` (exit 0 valid, 2 invalid, every error listed).

With Nodes and EndpointSlices among the manifests it also names the node announcing each address and why every
other node does not; `--dead NODE` shows where the addresses go when that node's speaker is down.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence, Set
from pathlib import Path
from typing import Any, TextIO

import yaml

from metallb_fast import manifests
from metallb_fast.commands import crd_fields
from metallb_fast.commands.common import add_namespace_argument
from metallb_fast.planning import (
    DEFAULT_CLUSTER_FAMILIES,
    Plan,
    PlannedService,
    build_plan,
    explain_plan,
    plan_json,
    unknown_nodes,
)
from metallb_fast.speaker.election import NOT_OWNER
from metallb_fast.speaker.explain import Explanation
from metallb_fast.vocabulary import DEFAULT_NAMESPACE

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
        help="multi-document YAML or JSON manifest (metallb.io objects, v1 Services, Namespaces and Nodes, "
        "EndpointSlices); '-' reads stdin",
    )
    parser.add_argument(
        "--dead",
        action="append",
        default=[],
        metavar="NODE",
        help="treat this Node's speaker as down, as when memberlist declares it dead or it leaves (repeatable): "
        "its addresses move to the next node in the order",
    )
    parser.add_argument("--lb-class", default=None, help="the controller's --lb-class (default: none)")
    add_namespace_argument(parser)
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")
    parser.add_argument(
        "--crds",
        metavar="DIR",
        default=None,
        help="the metallb.io CRDs whose schemas name the known fields, to warn about unknown ones such as a "
        "misspelt spec.adresses (default: the source tree's deploy/crds)",
    )
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


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]


# What --dead stands for in a running cluster: the node's speaker left memberlist or was declared dead by it, so
# the election no longer counts it (MetalLB's UsableSpeakers); without memberlist, its Node is not Ready.
DEAD_NOTE = "dead: not a live memberlist member"


def _node_note(node: str, reason: str, explanation: Explanation, dead: Set[str]) -> str:
    if node in dead:
        return f"{node} [{DEAD_NOTE}]"
    # notOwner off a non-empty election order: NetworkUnavailable, excluded from load balancers, or (Local)
    # no serving endpoint there; MetalLB gives no finer reason, so neither does the JSON.
    if reason == NOT_OWNER and explanation.order and node not in explanation.order:
        return f"{node} [ineligible]"
    return node


def speaker_lines(explanation: Explanation, dead: Set[str]) -> list[str]:
    """Per address its node and interfaces, the election order, then the other nodes grouped by reason."""
    lines = []
    reasons = dict(explanation.reasons)
    distinct = set(reasons.values())
    # Nobody announces and every node says the same: one line says it all.
    unanimous = f" [{distinct.pop()} on every node]" if explanation.nobody and len(distinct) == 1 else ""
    for item in explanation.announcements:
        if item.node is not None:
            where = ", ".join(item.interfaces) if item.interfaces else "all interfaces"
            lines.append(f"{item.ip} announced by {item.node} on {where}")
    if explanation.nobody:
        unannounced = ", ".join(a.ip for a in explanation.announcements if a.node is None)
        head = f"{unannounced} announced by no node" if unannounced else "not announced"
        lines.append(f"{head}: {explanation.nobody}{unanimous}")
    if explanation.order:
        gone = sorted(n for n in dead if n in reasons)
        suffix = f" (--dead {', '.join(gone)}: {DEAD_NOTE}s)" if gone else ""
        lines.append(f"election order: {', '.join(explanation.order)}{suffix}")
    if reasons and not unanimous:
        by_reason: dict[str, list[str]] = {}
        for node, reason in reasons.items():
            by_reason.setdefault(reason, []).append(_node_note(node, reason, explanation, dead))
        lines.append("not announcing: " + "; ".join(f"{', '.join(n)} ({r})" for r, n in by_reason.items()))
    return ["    " + line for line in lines]


def render_table(
    document: dict[str, Any],
    speaker: Mapping[str, Explanation] | None = None,
    dead: Set[str] = frozenset(),
) -> str:
    """speaker: each Service's explanation by namespace/name; None when the manifests hold no Node."""
    services = document["services"]
    rows = [(f"{s['namespace']}/{s['name']}", ",".join(s["ips"]) or "<none>", s["pool"] or "<none>") for s in services]
    header, *lines = _table(("SERVICE", "IPS", "POOL"), rows)
    out = [header]
    for service, line in zip(services, lines, strict=True):
        out.append(line)
        for event in service["events"]:
            out.append(f"    {event['type']} {event['reason']}: {event['message']}")
        if speaker is not None:
            out.extend(speaker_lines(speaker[f"{service['namespace']}/{service['name']}"], dead))
    if speaker is None and any(s["ips"] for s in services):
        out.append(
            "(no v1 Node in the manifests: add Nodes and EndpointSlices to see which node announces each address)"
        )
    out.append("")
    pool_rows = [
        (p["name"], str(p["assignedIPv4"]), str(p["availableIPv4"]), str(p["assignedIPv6"]), str(p["availableIPv6"]))
        for p in document["pools"]
    ]
    out.extend(_table(("POOL", "IPv4 ASSIGNED", "IPv4 AVAILABLE", "IPv6 ASSIGNED", "IPv6 AVAILABLE"), pool_rows))
    return "\n".join(out) + "\n"


def parse_families(text: str) -> tuple[str, ...]:
    families = tuple(f.strip() for f in text.split(",") if f.strip())
    if not families or len(families) > 2 or len(set(families)) != len(families):
        raise ValueError(f"--cluster-ip-families {text!r}: give IPv4, IPv6, IPv4,IPv6 or IPv6,IPv4")
    for family in families:
        if family not in ("IPv4", "IPv6"):
            raise ValueError(f"--cluster-ip-families {text!r}: {family!r} is not IPv4 or IPv6")
    return families


def field_warnings(documents: Iterable[Any], crds: str | None) -> list[str]:
    """Unknown fields of the metallb.io objects, by the CRDs' schemas; one note when no CRDs are found."""
    directory = crd_fields.crd_dir(crds)
    if directory is None or not directory.is_dir():
        where = f"{directory} is not a directory" if directory else "no CRDs found"
        return [f"unknown fields not checked: {where} (pass --crds DIR, the metallb.io CRDs of deploy/crds)"]
    return crd_fields.unknown_field_warnings(manifests.objects(documents), crd_fields.load_schemas(directory))


def load_plan(
    paths: Iterable[str],
    lb_class: str | None,
    cluster_families: tuple[str, ...] = DEFAULT_CLUSTER_FAMILIES,
    namespace: str = DEFAULT_NAMESPACE,
    crds: str | None = None,
) -> Plan:
    documents, read_errors = load_documents(paths)
    if read_errors:
        return Plan(valid=False, errors=read_errors)
    plan = build_plan(documents, lb_class, cluster_families, namespace)
    plan.warnings.extend(field_warnings(documents, crds))
    return plan


def plan_document(plan: Plan, explanations: Mapping[str, Explanation]) -> dict[str, Any]:
    """plan's JSON; with Nodes in the manifests each Service gains its announcements and the other nodes' reasons."""

    def extend(entry: PlannedService, item: dict[str, Any]) -> None:
        item.update((explanations.get(entry.service.key) or Explanation()).as_dict())

    return plan_json(plan, extend=extend)


def run(args: argparse.Namespace) -> int:
    try:
        families = parse_families(args.cluster_ip_families)
    except ValueError as err:
        sys.stderr.write(f"metallb-fast plan: {err}\n")
        return EXIT_INVALID
    plan = load_plan(args.files, args.lb_class, families, args.namespace, args.crds)
    for warning in plan.warnings:
        sys.stderr.write(f"metallb-fast plan: warning: {warning}\n")
    dead = frozenset(args.dead)
    if plan.valid and (unknown := unknown_nodes(plan, dict.fromkeys(args.dead))):
        known = f"known: {', '.join(sorted(plan.nodes))}" if plan.nodes else "the manifests hold no v1 Node"
        for name in unknown:
            sys.stderr.write(f"metallb-fast plan: --dead {name}: no Node named {name!r} in the manifests ({known})\n")
        return EXIT_INVALID
    explanations = explain_plan(plan, args.lb_class, dead)
    document = plan_document(plan, explanations)
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif document["valid"]:
        sys.stdout.write(render_table(document, explanations if plan.nodes else None, dead))
    else:
        sys.stderr.write("invalid configuration:\n" + "".join(f"  - {e}\n" for e in document["errors"]))
    return 0 if document["valid"] else EXIT_INVALID
