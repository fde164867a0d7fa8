"""Kubernetes label selectors: parsing with the API machinery's validation, and whether two can select one object.

Validation follows metav1.LabelSelectorAsSelector (operators, value counts, label key and value syntax) plus
MetalLB's validateLabelSelectorDuplicate (a selector, match expression or value repeated in one list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metallb_fast.config.fields import ObjectFields
from metallb_fast.config.k8snames import label_key_error, label_value_error
from metallb_fast.config.model import LabelSelector, SelectorOperator, SelectorRequirement


def _selector_key(selector: LabelSelector) -> tuple[object, ...]:
    return (selector.match_labels, tuple((r.key, r.operator, r.values) for r in selector.match_expressions))


def _parse_requirement(
    fields: ObjectFields, expr: Mapping[str, Any], path: str, values_required: bool
) -> SelectorRequirement | None:
    key = fields.text(expr, "key", f"{path}.key")
    operator_text = fields.text(expr, "operator", f"{path}.operator")
    values = fields.texts(expr, "values", f"{path}.values")
    ok = True
    if key is None:
        fields.report(f"{path}.key", None, "is required")
        ok = False
    elif (err := label_key_error(key)) is not None:
        fields.report(f"{path}.key", key, err)
        ok = False
    if operator_text is None:
        fields.report(f"{path}.operator", None, "is required")
        return None
    try:
        operator = SelectorOperator(operator_text)
    except ValueError:
        fields.report(
            f"{path}.operator", operator_text, "not a label selector operator (In, NotIn, Exists, DoesNotExist)"
        )
        return None
    if values_required and not values:
        # v1beta1 BGPPeer's legacy node selectors declare values as required with at least one item.
        fields.report(f"{path}.values", None, "is required with at least one value in BGPPeer v1beta1")
        ok = False
    elif operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
        fields.report(f"{path}.values", None, f"operator {operator.value} needs at least one value")
        ok = False
    elif operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
        fields.report(f"{path}.values", values, f"operator {operator.value} takes no values")
        ok = False
    for i, value in enumerate(values):
        if (err := label_value_error(value)) is not None:
            fields.report(f"{path}.values[{i}]", value, err)
            ok = False
    fields.duplicates(f"{path}.values", values, "value")
    if not ok or key is None:
        return None
    return SelectorRequirement(key, operator, tuple(sorted(set(values))))


def parse_selector(
    fields: ObjectFields, obj: Mapping[str, Any], path: str, *, values_required: bool = False
) -> LabelSelector | None:
    """One metav1.LabelSelector; None when it is invalid (the problems are reported)."""
    ok = True
    match_labels = fields.string_map(obj, "matchLabels", f"{path}.matchLabels")
    for key, value in match_labels.items():
        err = label_key_error(key) or label_value_error(value)
        if err is not None:
            fields.report(f"{path}.matchLabels.{key}", value, err)
            ok = False
    requirements: list[SelectorRequirement] = []
    seen: dict[SelectorRequirement, str] = {}
    for expr_path, expr in fields.mappings(obj, "matchExpressions", f"{path}.matchExpressions"):
        requirement = _parse_requirement(fields, expr, expr_path, values_required)
        if requirement is None:
            ok = False
            continue
        if requirement in seen:
            fields.report(expr_path, None, f"duplicate match expression (same as {seen[requirement]})")
            ok = False
            continue
        seen[requirement] = expr_path
        requirements.append(requirement)
    if not ok:
        return None
    return LabelSelector(tuple(sorted(match_labels.items())), tuple(requirements))


def parse_selector_list(
    fields: ObjectFields, spec: Mapping[str, Any], key: str, path: str, *, values_required: bool = False
) -> tuple[LabelSelector, ...]:
    """A list of selectors; the same selector twice is an error (MetalLB: duplicate definition of <key>)."""
    result: list[LabelSelector] = []
    seen: dict[tuple[object, ...], str] = {}
    for item_path, item in fields.mappings(spec, key, path):
        selector = parse_selector(fields, item, item_path, values_required=values_required)
        if selector is None:
            continue
        identity = _selector_key(selector)
        if identity in seen:
            fields.report(item_path, None, f"duplicate selector (same as {seen[identity]})")
            continue
        seen[identity] = item_path
        result.append(selector)
    return tuple(result)


def _requirements(selector: LabelSelector) -> list[SelectorRequirement]:
    labels = [SelectorRequirement(k, SelectorOperator.IN, (v,)) for k, v in selector.match_labels]
    return labels + list(selector.match_expressions)


def selectors_can_both_match(a: LabelSelector, b: LabelSelector) -> bool:
    """Whether some label set satisfies both selectors (keys are independent, so per-key reasoning is exact)."""
    allowed: dict[str, set[str]] = {}
    excluded: dict[str, set[str]] = {}
    present: set[str] = set()
    absent: set[str] = set()
    for r in _requirements(a) + _requirements(b):
        if r.operator is SelectorOperator.IN:
            allowed[r.key] = allowed[r.key] & set(r.values) if r.key in allowed else set(r.values)
            present.add(r.key)
        elif r.operator is SelectorOperator.NOT_IN:
            excluded.setdefault(r.key, set()).update(r.values)
        elif r.operator is SelectorOperator.EXISTS:
            present.add(r.key)
        else:
            absent.add(r.key)
    if present & absent:
        return False
    return all(values - excluded.get(key, set()) for key, values in allowed.items())


def selector_lists_can_both_match(a: tuple[LabelSelector, ...], b: tuple[LabelSelector, ...]) -> bool:
    """For MetalLB selector lists (empty = everything, else any one selector): can one object match both?"""
    left = a or (LabelSelector(),)
    right = b or (LabelSelector(),)
    return any(selectors_can_both_match(x, y) for x in left for y in right)
