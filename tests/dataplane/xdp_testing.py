"""Shared by the XDP tests: load the program (or skip / fail per tests.conftest policy) and run one frame."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from metallb_fast.dataplane import bpfsys
from metallb_fast.dataplane.base import AddressCounters, ResponderError, Verdict
from metallb_fast.dataplane.xdp import MapKey, XdpProgram
from tests.conftest import require, require_root

# test_run resolves ingress_ifindex in the caller's namespace and needs a real device: loopback is always 1.
INGRESS_IFINDEX = 1
OTHER_IFINDEX = 4242  # only ever a map key: "owned on another interface"


def load_program(**options: Any) -> XdpProgram:
    """XdpProgram(**options), or skip / fail as tests.conftest says when it cannot load here."""
    require_root()
    try:
        return XdpProgram(**options)
    except ResponderError as exc:
        require(False, f"a loadable XDP program ({exc})")
        raise  # unreachable: require() skipped or failed


@contextmanager
def loaded_program(desired: Mapping[MapKey, bytes], **options: Any) -> Iterator[XdpProgram]:
    """load_program(**options) answering `desired` with no liveness deadline; unloaded afterwards."""
    prog = load_program(**options)
    try:
        prog.apply(desired)
        prog.set_deadline(None)
        yield prog
    finally:
        prog.close()


@dataclass(frozen=True)
class Run:
    action: int
    frame: bytes
    verdicts: dict[Verdict, int]  # per-Verdict counter deltas caused by this frame (non-zero only)
    counters: dict[MapKey, AddressCounters]  # per-address counter deltas (non-zero only)


def run_frame(program: XdpProgram, frame: bytes, keys: Mapping[MapKey, bytes], repeat: int = 1) -> Run:
    """One BPF_PROG_TEST_RUN on INGRESS_IFINDEX, with the counter deltas it caused. With repeat > 1 the program
    runs on the same buffer again and again (the kernel does not restore it): only for frames it leaves alone."""
    before_v = program.verdict_counts()
    before_c = {key: program.counters(*key) for key in keys}
    result = bpfsys.xdp_test_run(program.fd, frame, ingress_ifindex=INGRESS_IFINDEX, repeat=repeat)
    after_v = program.verdict_counts()
    verdicts = {v: after_v[v] - before_v[v] for v in Verdict if after_v[v] != before_v[v]}
    counters = {}
    for key in keys:
        after = program.counters(*key)
        delta = AddressCounters(after.requests - before_c[key].requests, after.replies - before_c[key].replies)
        if delta != AddressCounters():
            counters[key] = delta
    return Run(result.action, result.frame, verdicts, counters)
