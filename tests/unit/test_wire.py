"""The fast-path wire contract (dataplane/wire.py) is the one definition the C program and the ring loop use.

The XDP program gets it as -D flags at load time and the ring loop as ext/wire_contract.pxd, written by setup.py at
build time: these tests check that what was generated and compiled is what the Python definitions say now (a stale
build fails here, not in a differential test), and that neither C source defines a contract name of its own.
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address
from pathlib import Path
from types import ModuleType

import pytest

from metallb_fast.dataplane import packets, wire, xdp
from metallb_fast.dataplane.base import Verdict
from tests.conftest import IN_CI
from tests.dataplane.frames import arp, heartbeat4, heartbeat6, ns

ROOT = Path(__file__).resolve().parents[2]
PXD = ROOT / "ext" / "wire_contract.pxd"


def _ring_extension() -> ModuleType:
    try:
        from metallb_fast.dataplane import _ring
    except ImportError:  # in CI a missing extension is a failure, not a skip
        if IN_CI:
            raise
        pytest.skip("the Cython extension metallb_fast.dataplane._ring is not built")
    return _ring


def test_verdict_codes_are_base_verdict_order() -> None:
    values = wire.constants()
    assert [values[f"VERDICT_{verdict.name}"] for verdict in Verdict] == list(range(len(Verdict)))
    assert values["VERDICT_COUNT"] == len(Verdict)
    assert wire.cflags()[0] == "-DVERDICT_ANSWERED=0"
    assert all(re.fullmatch(r"-D[A-Z][A-Z0-9_]*=-?\d+", flag) for flag in wire.cflags())


def test_frame_constants_are_the_lengths_packets_py_builds() -> None:
    values = wire.constants()
    assert values["NA_FRAME_LEN"] == len(packets.unsolicited_na(IPv6Address("2001:db8::1"), bytes(6)))
    assert values["ARP_FRAME_LEN"] == len(arp(pad=b""))
    assert (values["HB4_FRAME_LEN"], values["HB6_FRAME_LEN"]) == (len(heartbeat4()), len(heartbeat6()))
    request = ns(options=b"")
    assert values["IP6_FRAME_LEN"] + values["NS_LEN"] == len(request)
    assert values["HB_KIND_OFFSET"] == heartbeat4().index(b"MLBF") + 5 - values["IP4_FRAME_LEN"]


def test_the_generated_pxd_is_what_the_definitions_generate() -> None:
    if not PXD.is_file() and not IN_CI:
        pytest.skip(f"{PXD} is written by setup.py: build the package (scripts/install.sh)")
    assert PXD.read_text() == wire.pxd(), "stale: rebuild (pip install -e . or scripts/install.sh)"


def test_the_ring_extension_was_compiled_with_these_definitions() -> None:
    ring = _ring_extension()
    assert wire.constants() == ring.WIRE_CONTRACT, "stale build: rebuild (pip install -e . or scripts/install.sh)"
    assert tuple(verdict.value for verdict in Verdict) == ring.VERDICTS


def _defined_in_c(source: str) -> set[str]:
    return set(re.findall(r"^\s*#\s*define\s+([A-Za-z_]\w*)", source, re.MULTILINE))


def _defined_in_cython(source: str) -> set[str]:
    """Names given a value in a `cdef enum:` block (indented NAME = value lines)."""
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]*)\s*=", source, re.MULTILINE))


def test_neither_c_source_defines_a_contract_name_itself() -> None:
    names = wire.constants().keys()
    program = xdp.source_path().read_text()
    assert not _defined_in_c(program) & names
    assert set(re.findall(r"\bVERDICT_[A-Z_]+\b", program)) <= names, "every verdict the program counts is passed"
    assert not _defined_in_cython((ROOT / "ext" / "ring.pyx").read_text()) & names
    assert not _defined_in_cython((ROOT / "ext" / "flood_buckets.pxd").read_text()) & names


def test_the_program_source_is_package_data_beside_its_loader() -> None:
    assert xdp.source_path() == Path(xdp.__file__).resolve().with_name("xdp_responder.c")
    assert xdp.source_path().is_file()
    assert not (ROOT / "ext" / "xdp_responder.c").exists(), "one copy: the one the wheel carries"
