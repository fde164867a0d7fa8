"""The election's hash loop in C (ext/election.pyx, ext/sha256.h) picks the node hashlib picks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.config.model import L2Advertisement
from metallb_fast.speaker import election
from tests.conftest import require
from tests.unit.speaker_builders import make_config, make_nodes, make_service, make_slice

names = st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=90), max_size=12)
keys = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=90)


def implementations() -> list[Callable[[list[bytes], bytes], int]]:
    """The extension's hash loops: libcrypto's SHA-256 where it opens (what runs here), and ext/sha256.h."""
    require(election.lowest_hash is not None, "the built extension metallb_fast.speaker._election")
    from metallb_fast.speaker import _election

    return [_election.lowest_hash, _election.lowest_hash_portable]


def hashlib_lowest(prefixes: list[bytes], key: bytes) -> int:
    if not prefixes:
        return -1
    return min(range(len(prefixes)), key=lambda i: hashlib.sha256(prefixes[i] + key).digest())


@settings(max_examples=400, deadline=None)
@given(names, keys)
def test_lowest_hash_is_hashlibs_choice(node_names: list[str], key: str) -> None:
    """Any lengths: one block, the padding spilling into a second block (56-63 bytes), several blocks."""
    prefixes = [f"{name}#".encode() for name in node_names]
    want = hashlib_lowest(prefixes, key.encode())
    for lowest_hash in implementations():
        got = lowest_hash(prefixes, key.encode())
        if got != want:  # equal names hash equally: either index is the same node
            assert prefixes[got] == prefixes[want]


@pytest.mark.parametrize("total", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200])
def test_digest_at_block_boundaries(total: int) -> None:
    """Two candidates whose messages have the same length: the order of the digests decides, at every length."""
    for lowest_hash in implementations():
        for split in {0, total // 2, total}:
            prefixes = [b"a" * split, b"b" * split]
            key = b"k" * (total - split)
            assert lowest_hash(prefixes, key) == hashlib_lowest(prefixes, key)


def test_elect_winner_same_with_and_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    implementations()
    nodes = make_nodes(*(f"node-{i:03d}" for i in range(300)))
    config = make_config(L2Advertisement(name="all"))
    winners = []
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(election, "lowest_hash", None)
        found = []
        for last in range(1, 60):
            address = ip_address(f"2001:db8::{last:x}")
            service = make_service(f"svc-{last}", [str(address)])
            slices = [make_slice(service, "node-000")]
            result = election.elect(service, address, config, "default", nodes, slices, full_order=False)
            full = election.elect(service, address, config, "default", nodes, slices)
            assert result.winner == full.winner  # the winner-only path agrees with the sorted order
            found.append(result.winner)
        winners.append(found)
    assert winners[0] == winners[1]
