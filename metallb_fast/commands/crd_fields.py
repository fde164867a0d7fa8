"""Fields of metallb.io objects that their CRD's schema does not define: a misspelt `adresses` in an
IPAddressPool's spec. The API server prunes such fields without a word (structural schemas), so the object
applies and silently does something else; `plan` names them instead.

The known fields are the CRDs' own OpenAPI schemas (deploy/crds), not a list kept by hand.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from metallb_fast.vocabulary import GROUP

# The source tree's CRDs (a checkout or an editable install); an installed wheel carries none: pass --crds.
SOURCE_CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"

Schemas = Mapping[tuple[str, str], Mapping[str, Any]]  # (apiVersion, kind) -> openAPIV3Schema


def crd_dir(given: str | None) -> Path | None:
    """--crds, else the source tree's deploy/crds when there is one."""
    if given:
        return Path(given)
    return SOURCE_CRD_DIR if SOURCE_CRD_DIR.is_dir() else None


def load_schemas(directory: Path) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Every served version's schema of every CustomResourceDefinition in the directory's YAML files."""
    schemas: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            for version in spec.get("versions") or []:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if kind and schema and version.get("served", True):
                    schemas[(f"{spec.get('group')}/{version['name']}", kind)] = schema
    return schemas


def _unknown(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, list[str]]]:
    """(field path, the names the schema knows at that level) for every field the schema does not define."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if properties is not None and key in properties:
                yield from _unknown(item, properties[key], where)
            elif isinstance(extra, Mapping):
                yield from _unknown(item, extra, where)
            elif properties is not None and extra is not True:
                yield where, sorted(properties)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _unknown(item, schema["items"], f"{path}[{index}]")


def unknown_field_warnings(objects: Iterable[Mapping[str, Any]], schemas: Schemas) -> list[str]:
    """One warning per field of a metallb.io object that its CRD does not define, with the likely field meant."""
    warnings = []
    for obj in objects:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or api_version.rpartition("/")[0] != GROUP:
            continue
        schema = schemas.get((api_version, str(kind)))
        if schema is None:
            continue  # an unknown kind or version: reported as an ignored document or a config error
        metadata = obj.get("metadata") or {}
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        for path, known in _unknown(obj, schema, ""):
            leaf = path.rsplit(".", 1)[-1]
            close = difflib.get_close_matches(leaf, known, n=1)
            hint = f"; did you mean {path[: len(path) - len(leaf)]}{close[0]}?" if close else ""
            warnings.append(
                f"{kind} {name or '?'}: field {path} ignored: the {kind} CRD has no such field (the API server "
                f"drops it on apply){hint}"
            )
    return warnings
