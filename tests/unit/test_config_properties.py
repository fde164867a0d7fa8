"""Properties of parse_config over generated pools and selectors."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.config import config_problems, parse_config
from metallb_fast.config.model import LabelSelector, SelectorOperator, SelectorRequirement
from metallb_fast.config.selectors import selectors_can_both_match

# Documentation ranges only, as the project's rule asks even for addresses that never reach a wire.
V4_BASE = int(ipaddress.IPv4Address("198.51.100.0"))
V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))
SPACE = 1 << 12  # addresses per family to carve ranges from (enough for CIDR- and range-shaped entries)


def render(first: int, last: int, version: int, style: int) -> str:
    """A pool entry for [first, last]: a CIDR when the span is one aligned block (style permitting), else a-b."""
    ip = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    size = last - first + 1
    bits = 32 if version == 4 else 128
    if style == 0 and size & (size - 1) == 0 and first % size == 0:
        return f"{ip(first)}/{bits - size.bit_length() + 1}"
    spaces = " " if style == 2 else ""
    return f"{ip(first)}{spaces}-{spaces}{ip(last)}"


@st.composite
def disjoint_entries(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """Non-overlapping (first, last, version) spans, in random order."""
    entries: list[tuple[int, int, int]] = []
    for version, base in ((4, V4_BASE), (6, V6_BASE)):
        cuts = draw(st.lists(st.integers(0, SPACE - 1), min_size=0, max_size=12, unique=True))
        bounds = sorted(cuts)
        for lo, hi in itertools.pairwise(bounds):
            if draw(st.booleans()):  # leave some gaps, some touching ranges
                entries.append((base + lo, base + hi - 1, version))
        if bounds:
            entries.append((base + bounds[-1], base + bounds[-1], version))
    return draw(st.permutations(entries))


def pool_objects(assignment: list[list[str]]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": f"pool-{i}"},
            "spec": {"addresses": entries},
        }
        for i, entries in enumerate(assignment)
        if entries
    ]


@st.composite
def pools_of(draw: st.DrawFn, entries: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    count = draw(st.integers(1, 4))
    pools: list[list[tuple[int, int, int]]] = [[] for _ in range(count)]
    for entry in entries:
        pools[draw(st.integers(0, count - 1))].append(entry)
    return pools


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_set_of_non_overlapping_ranges_parses(data: st.DataObject) -> None:
    entries = data.draw(disjoint_entries())
    pools = data.draw(pools_of(entries))
    styles = data.draw(st.lists(st.integers(0, 2), min_size=len(entries), max_size=len(entries)))
    style_of = dict(zip(entries, styles, strict=True))
    texts = [[render(*e, style_of[e]) for e in pool] for pool in pools]
    config = parse_config(pool_objects(texts))
    parsed = {p.name: [(int(r.first), int(r.last), r.version) for r in p.ranges] for p in config.pools}
    assert parsed == {f"pool-{i}": pool for i, pool in enumerate(pools) if pool}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_overlapping_pair_is_rejected_naming_both_pools(data: st.DataObject) -> None:
    entries = data.draw(disjoint_entries().filter(bool))
    pools = data.draw(pools_of(entries))
    owner = data.draw(st.sampled_from([i for i, pool in enumerate(pools) if pool]))
    first, last, version = data.draw(st.sampled_from(pools[owner]))
    # A new span sharing at least one address with [first, last], added to another (possibly new) pool.
    shared = data.draw(st.integers(first, last))
    base = V4_BASE if version == 4 else V6_BASE
    new_first = data.draw(st.integers(max(base, shared - 64), shared))
    new_last = data.draw(st.integers(shared, shared + 64))
    intruder = data.draw(st.integers(0, len(pools)).filter(lambda i: i != owner))
    texts = [[render(*e, 1) for e in pool] for pool in pools] + [[]]
    texts[intruder].append(render(new_first, new_last, version, data.draw(st.integers(0, 2))))
    problems = [str(p) for p in config_problems(pool_objects(texts))]
    names = (f'"pool-{owner}"', f'"pool-{intruder}"')
    assert any(all(n in p for n in names) and "overlaps" in p for p in problems), problems


LABEL_KEYS = ("a", "b")
LABEL_VALUES = ("x", "y")
requirements = st.builds(
    SelectorRequirement,
    st.sampled_from(LABEL_KEYS),
    st.sampled_from(list(SelectorOperator)),
    st.lists(st.sampled_from(LABEL_VALUES), min_size=1, max_size=2, unique=True).map(lambda v: tuple(sorted(v))),
).map(
    lambda r: (
        r if r.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) else SelectorRequirement(r.key, r.operator)
    )
)
selectors = st.builds(
    LabelSelector,
    st.lists(st.tuples(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES)), max_size=2).map(
        lambda pairs: tuple(sorted(dict(pairs).items()))
    ),
    st.lists(requirements, max_size=3).map(tuple),
)


@given(selectors, selectors)
def test_selector_overlap_matches_a_brute_force_search(a: LabelSelector, b: LabelSelector) -> None:
    # Every label set over the keys, each absent or one of the values or a value no selector names ("z").
    candidates = [
        {k: v for k, v in zip(LABEL_KEYS, choice, strict=True) if v is not None}
        for choice in itertools.product((None, *LABEL_VALUES, "z"), repeat=len(LABEL_KEYS))
    ]
    expected = any(a.matches(labels) and b.matches(labels) for labels in candidates)
    assert selectors_can_both_match(a, b) == expected
