"""The ARP flood benchmark's client sink (ext/flood.pyx load_xdp_drop): it drops the flood's replies and passes the
legitimate client's, or the bench's prober would hear nothing (and its RTT figures would be lost replies)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from metallb_fast.dataplane import bpfsys
from tests.conftest import require, require_root

XDP_DROP, XDP_PASS = 1, 2
KEPT = bytes.fromhex("026d6c010001")  # the lab client's MAC
HIGH_BITS = bytes.fromhex("f2fffefdfcfb")  # every byte >= 0x80 where it matters: no sign extension in the compare


def _frame(dst: bytes) -> bytes:
    return dst + bytes.fromhex("026d6c000001") + b"\x08\x06" + bytes(46)


def _load(keep_mac: bytes = b"") -> Iterator[int]:
    require_root()
    try:
        from metallb_fast.testing import _flood
    except ImportError as exc:
        require(False, f"the compiled flood extension ({exc})")
        raise
    fd = _flood.load_xdp_drop("mlbf_test_sink", keep_mac)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.fixture
def sink() -> Iterator[int]:
    yield from _load()


@pytest.fixture
def keeping_sink() -> Iterator[int]:
    yield from _load(KEPT)


def test_plain_sink_drops_everything(sink: int) -> None:
    for dst in (KEPT, b"\xff" * 6, HIGH_BITS):
        assert bpfsys.xdp_test_run(sink, _frame(dst)).action == XDP_DROP


def test_frames_to_the_kept_mac_pass_and_the_rest_drop(keeping_sink: int) -> None:
    assert bpfsys.xdp_test_run(keeping_sink, _frame(KEPT)).action == XDP_PASS
    assert bpfsys.xdp_test_run(keeping_sink, _frame(b"\xff" * 6)).action == XDP_DROP
    # one byte off in either compared word
    assert bpfsys.xdp_test_run(keeping_sink, _frame(KEPT[:3] + b"\x00" + KEPT[4:])).action == XDP_DROP
    assert bpfsys.xdp_test_run(keeping_sink, _frame(KEPT[:5] + b"\x02")).action == XDP_DROP


def test_a_mac_with_high_bits_is_matched_exactly() -> None:
    for fd in _load(HIGH_BITS):
        assert bpfsys.xdp_test_run(fd, _frame(HIGH_BITS)).action == XDP_PASS
        assert bpfsys.xdp_test_run(fd, _frame(KEPT)).action == XDP_DROP


def test_a_kept_mac_must_be_six_bytes() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        for _fd in _load(b"\x02\x00"):
            pass
