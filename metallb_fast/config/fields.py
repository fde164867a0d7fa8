"""Typed reads of one manifest object's fields, recording a ConfigProblem instead of raising on a wrong type.

The API server rejects a field of the wrong type (the CRD's OpenAPI schema); reading through ObjectFields gives
the same rejection, names the field path, and lets parsing go on so that every problem is reported at once.
A null field counts as absent, as Kubernetes prunes nulls for non-nullable CRD fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from metallb_fast.config.errors import ConfigProblem

T = TypeVar("T", covariant=True)
V = TypeVar("V")


def show(value: object) -> str:
    """A value as it appears in a message: strings as written, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _is_integer(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


@dataclass
class ObjectFields:
    """The identity of one object (for messages) and the shared list its problems are appended to."""

    kind: str
    name: str
    position: int
    problems: list[ConfigProblem]

    def report(self, field: str, value: object, rule: str) -> None:
        shown = None if value is None else show(value)
        problem = ConfigProblem(self.kind, self.name, field, shown, rule, self.position, isinstance(value, str))
        self.problems.append(problem)

    def _typed(self, obj: Mapping[str, Any], key: str, path: str, ok: bool, what: str) -> Any:
        value = obj.get(key)
        if value is None:
            return None
        if not ok:
            self.report(path, value, f"must be {what}")
            return None
        return value

    def _instance(self, obj: Mapping[str, Any], key: str, path: str, kind: type[V], what: str) -> V | None:
        value = obj.get(key)
        if isinstance(value, kind):
            return value
        if value is not None:
            self.report(path, value, f"must be {what}")
        return None

    def text(self, obj: Mapping[str, Any], key: str, path: str) -> str | None:
        return self._instance(obj, key, path, str, "a string")

    def flag(self, obj: Mapping[str, Any], key: str, path: str) -> bool | None:
        return self._instance(obj, key, path, bool, "true or false")

    def mapping(self, obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        return self._instance(obj, key, path, Mapping, "an object")  # type: ignore[type-abstract]

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self._typed(obj, key, path, _is_integer(obj.get(key)), "an integer")
        if value is None:
            return None
        value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                self.report(path, value, f"must be between {low} and {high}")
            elif low is not None:
                self.report(path, value, f"must be at least {low}")
            else:
                self.report(path, value, f"must be at most {high}")
            return None
        return value

    def texts(self, obj: Mapping[str, Any], key: str, path: str) -> list[str]:
        """A list of strings; wrong items are reported one by one and left out."""
        items = self._typed(obj, key, path, isinstance(obj.get(key), list), "a list of strings")
        result: list[str] = []
        for i, item in enumerate(items or ()):
            if isinstance(item, str):
                result.append(item)
            else:
                self.report(f"{path}[{i}]", item, "must be a string")
        return result

    def mappings(self, obj: Mapping[str, Any], key: str, path: str) -> list[tuple[str, Mapping[str, Any]]]:
        """A list of objects as (item path, item); wrong items are reported and left out."""
        items = self._typed(obj, key, path, isinstance(obj.get(key), list), "a list of objects")
        result: list[tuple[str, Mapping[str, Any]]] = []
        for i, item in enumerate(items or ()):
            if isinstance(item, Mapping):
                result.append((f"{path}[{i}]", item))
            else:
                self.report(f"{path}[{i}]", item, "must be an object")
        return result

    def string_map(self, obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        """A map of string to string (labels, matchLabels)."""
        value = self.mapping(obj, key, path)
        result: dict[str, str] = {}
        for k, v in (value or {}).items():
            if isinstance(k, str) and isinstance(v, str):
                result[k] = v
            else:
                self.report(f"{path}.{k}", v, "must map a string to a string")
        return result

    def duplicates(self, path: str, items: list[str], what: str) -> None:
        """MetalLB's validateDuplicate: the same entry twice in one list is an error."""
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            if item in first:
                self.report(f"{path}[{i}]", item, f"duplicate {what} (already at {path}[{first[item]}])")
            else:
                first[item] = i


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A parsed object with its identity for later cross-object problems.

    `paths` holds the manifest path of each parsed list item where later checks must name it: an IPAddressPool's
    `spec.addresses[i]` per range, a Community's `spec.communities[i]` per alias (invalid items are skipped, so
    indexes in the value and in the manifest differ).
    """

    value: T
    fields: ObjectFields
    paths: tuple[str, ...] = ()
