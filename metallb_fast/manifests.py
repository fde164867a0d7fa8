"""Manifests read as the API server would hold them: the objects of every document, List items in their place,
and which metallb.io objects a program reading one namespace never sees (pure: values in, values out)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_fast.vocabulary import GROUP


def objects(documents: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """Every object, in order; the items of a `kind: *List` (a `kubectl get -o yaml` export), nested Lists too,
    stand in its place as separate documents. Documents that are not objects (empty YAML documents) are skipped."""
    for document in documents:
        if not isinstance(document, Mapping):
            continue
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
            yield from objects(document["items"])
        else:
            yield document


def is_metallb(obj: Mapping[str, Any]) -> bool:
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.rpartition("/")[0] == GROUP


def namespace_of(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else None


@dataclass(frozen=True)
class Ignored:
    """A metallb.io object in another namespace than the one the programs read (MetalLB's webhook refuses it)."""

    kind: str
    name: str
    namespace: str

    def warning(self, read_namespace: str) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name} ignored: it is in namespace {self.namespace!r}, and the "
            f"controller and the speakers read metallb.io objects only from {read_namespace!r} (--namespace)"
        )


def in_namespace(
    found: Iterable[Mapping[str, Any]], namespace: str
) -> tuple[list[Mapping[str, Any]], list[Ignored]]:
    """The objects the programs of `namespace` read, and the metallb.io objects of other namespaces they ignore.
    A metallb.io object without metadata.namespace counts as applied to `namespace` (`kubectl apply -n`)."""
    kept: list[Mapping[str, Any]] = []
    ignored: list[Ignored] = []
    for obj in found:
        elsewhere = namespace_of(obj)
        if is_metallb(obj) and elsewhere is not None and elsewhere != namespace:
            metadata = obj.get("metadata") or {}
            ignored.append(Ignored(str(obj.get("kind") or "?"), str(metadata.get("name") or "?"), elsewhere))
        else:
            kept.append(obj)
    return kept, ignored
