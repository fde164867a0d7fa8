"""The XDP program is compiled and loaded by a child process (xdp_loader.py): the process that drives it holds fds
only, never bcc or LLVM; every way the child can fail reaches the caller as a ResponderError saying what happened,
without leaking an fd or a zombie.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from metallb_fast.dataplane import bpfsys, xdp, xdp_loader, xdp_maps
from metallb_fast.dataplane.base import ResponderError
from metallb_fast.dataplane.bpfmap import BpfMap
from tests.conftest import require, require_root
from tests.dataplane.xdp_testing import load_program

MAC = bytes.fromhex("02005e0000cc")

# Run in a fresh interpreter (this one may have imported bcc for another test): creates, drives and closes an
# XdpProgram and reports what the process holds meanwhile. Exit 3: the program cannot load here.
DRIVE = """
import json, os, sys
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from metallb_fast.dataplane.base import ResponderError
from metallb_fast.dataplane.xdp import XdpProgram

def rss_anon_kib():
    line = next(l for l in open("/proc/self/status") if l.startswith("RssAnon:"))
    return int(line.split()[1])

def open_fds():
    return len(os.listdir("/proc/self/fd"))

def children():
    return [pid for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]

rss, fds = rss_anon_kib(), open_fds()
try:
    program = XdpProgram()
except ResponderError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
program.apply({(IPv4Address("192.0.2.7"), 1): bytes(range(2, 8)), (IPv6Address("2001:db8::7"), 1): bytes(6)})
program.set_deadline(None)
program.verdict_counts()
program.counters(IPv4Address("192.0.2.7"), 1)
maps = [line for line in open("/proc/self/maps") if "LLVM" in line or "libbcc" in line or "clang" in line]
report = {"bcc": sorted(m for m in sys.modules if m == "bcc" or m.startswith("bcc.")), "mapped": maps,
          "children": children(), "rss_growth_kib": rss_anon_kib() - rss, "entries": len(program.entries)}
program.close()
report["fds_left"] = open_fds() - fds
print(json.dumps(report))
"""


@pytest.mark.root
def test_the_process_that_creates_an_xdp_program_never_loads_bcc() -> None:
    require_root()
    done = subprocess.run([sys.executable, "-c", DRIVE], capture_output=True, text=True, timeout=180, check=False)
    if done.returncode == 3:
        require(False, f"a loadable XDP program ({done.stderr.strip()[-400:]})")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    print(f"\nRssAnon growth of the process creating and driving an XdpProgram: {report['rss_growth_kib']} KiB")
    assert report["bcc"] == [] and report["mapped"] == []
    assert report["children"] == [], "the loader child was reaped"
    assert report["entries"] == 2
    assert report["fds_left"] == 0, "close() closed the program's and every map's fd"
    # Old code: ~34 MiB (LLVM's relocated data, the compile's heap); the maps themselves are kernel memory.
    assert report["rss_growth_kib"] < 8 * 1024


@pytest.mark.root
def test_a_program_that_does_not_compile_shows_the_compiler_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    require_root()
    broken = tmp_path / "broken.c"
    broken.write_text(xdp.source_path().read_text() + "\nint mlbf_broken(struct xdp_md *ctx) { return }\n")
    with pytest.raises(ResponderError, match=r"bcc could not compile .*broken\.c.*\(compiler output above\)"):
        xdp.XdpProgram(source=broken)
    err = capfd.readouterr().err
    assert "error: expected expression" in err, err[-2000:]  # clang's (it names the file /virtual/main.c)


def test_a_missing_source_is_named() -> None:
    with pytest.raises(ResponderError, match=r"program source /nonexistent/x\.c is missing"):
        xdp.XdpProgram(source=Path("/nonexistent/x.c"))


@pytest.mark.root
def test_the_packers_agree_with_the_kernels_key_and_value_sizes_for_every_map() -> None:
    require_root()
    load_program().close()  # skip / fail as the other XDP tests do when it cannot load here
    loaded = xdp_loader.load(xdp.loader_request())
    try:
        assert set(loaded.maps) == set(xdp_maps.LAYOUTS)
        for name, layout in xdp_maps.LAYOUTS.items():
            ours = bpfsys.map_info_by_fd(loaded.maps[name].fd)  # the kernel, asked through the fd handed over
            assert ours == loaded.maps[name].info, name
            assert (ours.key_size, ours.value_size) == (layout.key.size, layout.value.size), name
        program = bpfsys.prog_info_by_fd(loaded.prog_fd)
        assert (program.id, program.name, program.type) == (loaded.prog_id, xdp.FUNCTION_NAME,
                                                             bpfsys.BPF_PROG_TYPE_XDP)
    finally:
        loaded.close()


@pytest.mark.root
def test_handed_over_fds_are_not_inherited_and_a_closed_program_refuses_the_deadline() -> None:
    """A later child of the process (a fork and exec) must not keep the maps alive; after close() the deadline slot's
    fd number may belong to something else."""
    require_root()
    program = load_program()
    try:
        fds = [program.fd, *(table.fd for table in program._loaded.maps.values())]
        assert not any(os.get_inheritable(fd) for fd in fds)
    finally:
        program.close()
    with pytest.raises(ResponderError, match="after close"):
        program.set_deadline(1)


def test_a_map_of_other_sizes_than_the_packers_is_refused_by_name() -> None:
    info = bpfsys.MapInfo(id=1, type=bpfsys.BPF_MAP_TYPE_HASH, key_size=8, value_size=16, max_entries=4,
                          name="vips_v4")
    with pytest.raises(ResponderError, match=r"map vips_v4 .* 16-byte values, xdp_maps.py packs 8 and 8"):
        xdp_maps.check("vips_v4", info)
    with pytest.raises(ResponderError, match="no map flood_buckets"):
        xdp_maps.check("flood_buckets", None)


def test_vip_keys_are_the_address_bytes_in_network_order_then_the_ifindex() -> None:
    v4, v6 = IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1")
    assert xdp_maps.vip_key(v4, 7) == v4.packed + (7).to_bytes(4, sys.byteorder)
    assert xdp_maps.vip_key(v6, 7) == v6.packed + (7).to_bytes(4, sys.byteorder)
    assert xdp_maps.vip_key_fields(xdp_maps.vip_key(v4, 7)) == (v4, 7)
    assert xdp_maps.vip_key_fields(xdp_maps.vip_key(v6, 0)) == (v6, 0)


# ------------------------------------------------------------------------------- a loader child that misbehaves


def request() -> xdp_loader.Request:
    return xdp.loader_request()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test leaves no fd open that it did not find open."""
    before = open_fds()
    yield
    assert open_fds() <= before


def child(code: str) -> list[str]:
    """A loader command running `code` (argv[1]: the socket's fd, argv[2]: the request)."""
    return [sys.executable, "-c", code]


def loader_pid(message: str) -> int:
    match = re.search(r"pid (\d+)", message)
    assert match, message
    return int(match.group(1))


def assert_reaped(pid: int) -> None:
    assert not Path(f"/proc/{pid}").exists(), f"loader child {pid} is still there (a zombie?)"


def load_failing(command: Sequence[str], match: str, timeout_s: float = 30) -> ResponderError:
    with pytest.raises(ResponderError, match=match) as raised:
        xdp_loader.load(request(), command=command, timeout_s=timeout_s)
    return raised.value


def test_a_loader_that_exits_without_a_word_is_named_with_its_status(no_leaks: None) -> None:
    error = load_failing(child("import sys; sys.exit(3)"),
                         r"the XDP loader process \(pid \d+, .*\) exited with status 3 without handing over")
    assert_reaped(loader_pid(str(error)))


def test_a_loader_killed_by_a_signal_says_so(no_leaks: None) -> None:
    error = load_failing(child("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), "was killed by SIGKILL")
    assert_reaped(loader_pid(str(error)))


def test_a_loader_that_hangs_is_killed_at_the_timeout(no_leaks: None) -> None:
    error = load_failing(child("import time; time.sleep(60)"), r"did not hand over the program within 0.5 s",
                         timeout_s=0.5)
    assert_reaped(loader_pid(str(error)))


SEND = "import json, os, socket, sys; socket.send_fds(socket.socket(fileno=int(sys.argv[1])), [{message}], {fds})"


def test_the_loaders_own_error_is_raised_as_it_said_it(no_leaks: None) -> None:
    load_failing(child(SEND.format(message="json.dumps({'error': 'xdp: no such luck'}).encode()", fds="[]")),
                 "^xdp: no such luck$")


def test_fds_sent_with_a_message_that_is_not_understood_are_closed(no_leaks: None) -> None:
    fds = "[os.open('/dev/null', os.O_RDONLY), os.open('/dev/null', os.O_RDONLY)]"
    load_failing(child(SEND.format(message="b'{not json'", fds=fds)), "message is not understood")
    load_failing(child(SEND.format(message="json.dumps({'error': 'xdp: failed'}).encode()", fds=fds)),
                 "xdp: failed")
    maps_only = "json.dumps({'maps': {}, 'prog_id': 1, 'adopted': False, 'found': [], 'pin_dir': None}).encode()"
    load_failing(child(SEND.format(message=maps_only, fds=fds)), "handed over 2 fds for maps")


# --------------------------------------------------------------------------------------------- maps over an fd


def test_possible_cpus_counts_every_range(tmp_path: Path) -> None:
    for text, count in (("0\n", 1), ("0-1\n", 2), ("0-3,8-11\n", 8), ("0,2,4-5\n", 4)):
        (tmp_path / "possible").write_text(text)
        assert bpfsys.possible_cpus(str(tmp_path / "possible")) == count


@pytest.fixture
def maps() -> Iterator[dict[str, BpfMap]]:
    """A hash map and a per-CPU hash map of 4-byte keys and 12-byte values, made for the test."""
    require_root()
    made: dict[str, BpfMap] = {}
    try:
        for name, kind in (("t_hash", bpfsys.BPF_MAP_TYPE_HASH), ("t_percpu", bpfsys.BPF_MAP_TYPE_PERCPU_HASH)):
            fd = bpfsys.map_create(kind, 4, 12, 16, name)
            made[name] = BpfMap(fd, bpfsys.map_info_by_fd(fd), bpfsys.possible_cpus())
        yield made
    finally:
        for bpf_map in made.values():
            bpf_map.close()


@pytest.mark.root
def test_a_map_is_read_written_walked_and_emptied_through_its_fd(maps: dict[str, BpfMap]) -> None:
    table = maps["t_hash"]
    keys = [i.to_bytes(4, "little") for i in range(5)]
    for i, key in enumerate(keys):
        table.put(key, bytes([i]) * 12)
    assert table.get(keys[3]) == bytes([3]) * 12
    assert dict(table.items()) == {key: bytes([i]) * 12 for i, key in enumerate(keys)}
    # Deleting while walking: the next key after a deleted one is the first again (a hash map), none is skipped.
    assert sum(table.delete(key) for key in table) == len(keys)
    assert list(table) == [] and table.get(keys[0]) is None and not table.delete(keys[0])
    with pytest.raises(ValueError, match="the map's are 12"):
        table.put(keys[0], bytes(8))


@pytest.mark.root
def test_a_per_cpu_map_holds_a_value_per_possible_cpu(maps: dict[str, BpfMap]) -> None:
    table = maps["t_percpu"]
    table.put(b"\x01\x00\x00\x00", b"abcdefghijkl")
    values = table.per_cpu_values(b"\x01\x00\x00\x00")
    assert values == [b"abcdefghijkl"] * bpfsys.possible_cpus()  # each slot padded to 16 bytes in the syscall
    assert table.get(b"\x02\x00\x00\x00") is None


@pytest.mark.root
def test_a_slot_writes_its_key_again_and_again(maps: dict[str, BpfMap]) -> None:
    table = maps["t_hash"]
    slot = table.slot(b"\x09\x00\x00\x00", struct.Struct("=QI"))
    for value in (1, 2**64 - 1, 0):
        slot.write(value, 7)
        assert table.get(b"\x09\x00\x00\x00") == struct.pack("=QI", value, 7)
    with pytest.raises(ValueError, match="plain map"):
        maps["t_percpu"].slot(b"\x09\x00\x00\x00", struct.Struct("=QI"))
