"""Compare a CRD with MetalLB's: does it accept the same objects, served the same way?

Descriptions are ours and are ignored. CEL rules (x-kubernetes-validations) are ignored too: Kubernetes 1.20, the
API server we test against, has no CEL, so our CRDs leave them out on purpose (IGNORED_KEYS says so in one place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

IGNORED_KEYS = frozenset({"description", "x-kubernetes-validations"})

# Per-version fields that change how objects are served; anything else (schema aside) is presentation.
VERSION_KEYS = ("served", "storage", "deprecated", "deprecationWarning", "subresources", "additionalPrinterColumns")

REFERENCE_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "metallb-crds"
OURS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def load_crds(directory: Path) -> dict[str, dict[str, Any]]:
    """CRD name -> CRD, for every CustomResourceDefinition in the directory's YAML files."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out[doc["metadata"]["name"]] = doc
    return out


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in IGNORED_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _diff(ours: Any, theirs: Any, path: str, out: list[str]) -> None:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            where = f"{path}.{key}"
            if key not in ours:
                out.append(f"{where}: missing (reference has {theirs[key]!r})")
            elif key not in theirs:
                out.append(f"{where}: not in the reference (ours has {ours[key]!r})")
            else:
                _diff(ours[key], theirs[key], where, out)
        return
    if key_set_order_free(path) and isinstance(ours, list) and isinstance(theirs, list):
        ours, theirs = sorted(map(str, ours)), sorted(map(str, theirs))
    if ours != theirs:
        out.append(f"{path}: ours {ours!r}, reference {theirs!r}")


def key_set_order_free(path: str) -> bool:
    """Lists whose order carries no meaning: required field names and enum values."""
    return path.endswith(".required") or path.endswith(".enum")


def crd_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Every difference that changes which objects are accepted or how they are served; empty when compatible."""
    name = theirs["metadata"]["name"]
    out: list[str] = []
    ours_spec, theirs_spec = ours["spec"], theirs["spec"]
    for key in ("group", "names", "scope"):
        _diff(ours_spec.get(key), theirs_spec.get(key), f"{name}: spec.{key}", out)
    # No conversion stanza means strategy None; ours spells it out.
    ours_conv = ours_spec.get("conversion", {"strategy": "None"})
    theirs_conv = theirs_spec.get("conversion", {"strategy": "None"})
    _diff(ours_conv, theirs_conv, f"{name}: spec.conversion", out)
    ours_versions = {v["name"]: v for v in ours_spec["versions"]}
    theirs_versions = {v["name"]: v for v in theirs_spec["versions"]}
    _diff(sorted(ours_versions), sorted(theirs_versions), f"{name}: versions", out)
    for version in sorted(set(ours_versions) & set(theirs_versions)):
        mine, ref = ours_versions[version], theirs_versions[version]
        where = f"{name}/{version}"
        for key in VERSION_KEYS:
            _diff(mine.get(key), ref.get(key), f"{where}: {key}", out)
        _diff(_strip(mine["schema"]["openAPIV3Schema"]), _strip(ref["schema"]["openAPIV3Schema"]),
              f"{where}: schema", out)
    return out
