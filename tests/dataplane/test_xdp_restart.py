"""Hitless restart of the XDP responder: a run that exits with keep_serving leaves its program attached and its maps
pinned; the next run given the same pin directory adopts them and swaps its program in, so a client asking every
10 ms across the switch never goes unanswered.

Topology (metallb_fast.lab): node0 with eth0 on LAN 0, client0 on LAN 0. The pin directories live on a bpf
filesystem this module mounts in a temporary directory (outside /sys, which `ip netns exec` remounts), shared by the
test process and the `respond` processes it starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from metallb_fast.commands.respond import InputError, pin_dir_from_args
from metallb_fast.dataplane import bpfsys, packets, pinning
from metallb_fast.dataplane.base import ResponderError
from metallb_fast.dataplane.xdp import (
    FUNCTION_NAME,
    _links,
    _open_ipr,
    _program_name,
    attached_programs,
    program_holders,
)
from metallb_fast.lab import Lab, in_netns
from metallb_fast.lab.tools import arping
from tests.conftest import require, require_root
from tests.dataplane.conftest import respond
from tests.dataplane.peers import PORT, reflections
from tests.dataplane.test_xdp_loader import responder

MAC = bytes.fromhex("02005e0000ab")
ETH_P_ARP = 0x0806
PROBE_INTERVAL_S = 0.01
REPLY_GRACE_S = 0.3  # a reply later than this after its request counts as lost


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("arping", "ip", "mount", "umount"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    with Lab(nodes=1, clients=1, lans=1) as lab:
        yield lab


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A bpf filesystem of this test's own (a fresh instance per mount), unmounted afterwards."""
    require_root()
    mountpoint = tmp_path / "bpffs"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "bpf", "bpf", str(mountpoint)], capture_output=True, text=True)
    require(mounted.returncode == 0, f"a mountable bpf filesystem ({mounted.stderr.strip()})")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def programs_on(netns: str, ifname: str) -> list[tuple[int, str]]:
    """[(program id, name)] of the XDP programs attached to an interface."""
    ipr = _open_ipr(netns)
    try:
        return [(prog_id, _program_name(prog_id)) for _, prog_id in attached_programs(ipr, _links(ipr)[ifname].index)]
    finally:
        ipr.close()


@dataclass
class ProbeResult:
    sent: dict[int, float] = field(default_factory=dict)  # seq -> monotonic send time
    answered: dict[int, float] = field(default_factory=dict)  # seq -> monotonic reply time
    macs: set[bytes] = field(default_factory=set)  # the MACs the replies named

    def unanswered(self, since: float = 0.0) -> list[tuple[int, float]]:
        """(seq, send time) of the requests sent at `since` or later that got no timely reply."""
        return [(seq, t) for seq, t in sorted(self.sent.items())
                if t >= since and (seq not in self.answered or self.answered[seq] - t > REPLY_GRACE_S)]


class ArpProber:
    """An ARP request for `address` every 10 ms from the client's eth0 (AF_PACKET), each with its own sender MAC
    02:ff:<seq>, so every reply (its target MAC is the request's sender MAC) names the request it answers."""

    def __init__(self, lab: Lab, address: IPv4Address) -> None:
        client = lab.clients[0]
        self._address = address
        self._eth_src = client.mac("eth0")
        self._sender_ip = client.ipv4("eth0")
        with in_netns(client.netns):
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self._sock.bind(("eth0", ETH_P_ARP))
        self._sock.settimeout(0.05)
        self.result = ProbeResult()
        self._sending = threading.Event()
        self._receiving = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]

    def __enter__(self) -> ArpProber:
        self._sending.set()
        self._receiving.set()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sending.clear()
        self._threads[0].join()
        time.sleep(REPLY_GRACE_S)
        self._receiving.clear()
        self._threads[1].join()
        self._sock.close()

    def _send(self) -> None:
        seq, next_at = 0, time.monotonic()
        while self._sending.is_set():
            sender_mac = b"\x02\xff" + seq.to_bytes(4, "big")
            frame = packets.arp_request(sender_mac, self._sender_ip, self._address)
            frame = frame[:6] + self._eth_src + frame[12:]  # replies come back to the client's own MAC
            self.result.sent[seq] = time.monotonic()
            self._sock.send(frame)
            seq += 1
            next_at += PROBE_INTERVAL_S
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _receive(self) -> None:
        while self._receiving.is_set():
            try:
                frame = self._sock.recv(2048)
            except TimeoutError:
                continue
            if len(frame) < 42 or frame[20:22] != b"\x00\x02" or frame[28:32] != self._address.packed:
                continue
            target_mac = frame[32:38]
            if target_mac[:2] == b"\x02\xff":
                self.result.answered.setdefault(int.from_bytes(target_mac[2:], "big"), time.monotonic())
                self.result.macs.add(frame[22:28])

    def wait_answered(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.result.answered) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.result.answered) >= count, "the responder does not answer the prober"


class ProgramWatch:
    """Notes, every 5 ms, when the program attached to an interface changes (the moment a new run adopts)."""

    def __init__(self, netns: str, ifname: str) -> None:
        self.changes: list[tuple[float, int | None]] = []  # (monotonic time, attached program id or None)
        self._where = (netns, ifname)
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProgramWatch:
        self._running.set()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.clear()
        self._thread.join()

    def _watch(self) -> None:
        # Opened by this thread: pyroute2's IPRoute used from another thread than its opener's talks to that
        # thread's namespace.
        netns, ifname = self._where
        ipr = _open_ipr(netns)
        try:
            index = _links(ipr)[ifname].index
            last: int | None = -1
            while self._running.is_set():
                attached = attached_programs(ipr, index)
                current = attached[0][1] if attached else None
                if current != last:
                    self.changes.append((time.monotonic(), current))
                    last = current
                time.sleep(0.005)
        finally:
            ipr.close()

    def first(self, prog_id_not: int, after: float) -> float | None:
        return next((t for t, prog in self.changes if t >= after and prog not in (None, prog_id_not)), None)


@pytest.mark.root
def test_restart_with_keep_serving_answers_every_request_and_hands_over(lab: Lab, bpffs: Path) -> None:
    node = lab.nodes[0]
    vip = lab.vip_v4(0)
    pin = bpffs / "node0"
    address = [f"{vip}={packets.format_mac(MAC)}"]
    # A deadline longer than any start-up (bcc compiles for 1 to 10 s on a busy 2-core machine): what is tested is
    # the handover, not whether the new run beats the deadline (the in-process test below covers expiry).
    options = ["--liveness", "60", "--pin-dir", str(pin)]
    with ArpProber(lab, vip) as prober, ProgramWatch(node.netns, "eth0") as watch:
        a = respond(lab, node.netns, "xdp", "eth0", address, extra=[*options, "--keep-serving-on-exit"])
        prober.wait_answered(20)
        since = time.monotonic()  # A answers: from here on every request must be answered
        ((a_prog, _),) = programs_on(node.netns, "eth0")
        a_counters = a.stop()  # SIGTERM; returns once the process has exited
        a_exited = time.monotonic()
        assert programs_on(node.netns, "eth0") == [(a_prog, FUNCTION_NAME)], "left attached by the exiting run"
        answered_alone = len(prober.result.answered)
        time.sleep(0.5)  # no process at all: the kernel answers alone, from the pinned maps
        assert len(prober.result.answered) >= answered_alone + 30

        b_started = time.monotonic()
        b = respond(lab, node.netns, "xdp", "eth0", address, extra=options)
        b_ready = time.monotonic()
        time.sleep(0.3)
    try:
        unanswered = prober.result.unanswered(since)
        adopted_at = watch.first(prog_id_not=a_prog, after=b_started)
        sent = sum(1 for t in prober.result.sent.values() if t >= since)
        print(f"\nrestart: {sent} requests every {PROBE_INTERVAL_S * 1e3:.0f} ms, "
              f"{len(unanswered)} unanswered; A exited {b_started - a_exited:.2f} s before B started; B adopted "
              f"{(adopted_at or float('nan')) - b_started:.2f} s after its start, ready after "
              f"{b_ready - b_started:.2f} s")
        assert unanswered == []
        assert prober.result.macs == {MAC}
        programs = programs_on(node.netns, "eth0")
        assert len(programs) == 1, "exactly one XDP program attached after the switch"
        ((b_prog, name),) = programs
        assert name == FUNCTION_NAME and b_prog != a_prog
        assert program_holders().get(b_prog) == b.proc.pid, "the new run's own program (ip netns exec execs)"
        assert adopted_at is not None and not any(
            prog is None for t, prog in watch.changes if t >= a_exited
        ), "the interface was never without a program"
    finally:
        b_counters = b.stop()
    # The counters live in the pinned maps: the new run's continue the old run's.
    assert b_counters["addresses"][0]["replies"] > a_counters["addresses"][0]["replies"]
    assert programs_on(node.netns, "eth0") == []
    assert not pin.exists(), "a normal close unpins"


@pytest.mark.root
def test_keep_serving_false_detaches_and_unpins_as_before(lab: Lab, bpffs: Path) -> None:
    node, vip = lab.nodes[0], lab.vip_v4(1)
    pin = bpffs / "node0"
    r = responder(node.netns, pin_dir=pin)
    r.sync({(vip, "eth0"): MAC})
    assert arping(lab, lab.clients[0].netns, vip, count=1) == [MAC]
    assert {"vips_v4", "vips_v6", "counters_v4", "counters_v6", "verdicts", "config", pinning.STAMP} <= {
        p.name for p in pin.iterdir()
    }
    r.close()
    assert programs_on(node.netns, "eth0") == []
    assert not pin.exists()
    assert arping(lab, lab.clients[0].netns, vip, count=1, wait_s=1) == []

    # Without a pin directory nothing could adopt: keep_serving closes as before.
    r = responder(node.netns)
    r.sync({(vip, "eth0"): MAC})
    r.close(keep_serving=True)
    assert programs_on(node.netns, "eth0") == []


@pytest.mark.root
def test_in_process_restart_adopts_entries_deadline_and_counters(lab: Lab, bpffs: Path) -> None:
    node, vip, other = lab.nodes[0], lab.vip_v4(2), lab.vip_v4(3)
    pin = bpffs / "node0"
    a = responder(node.netns, pin_dir=pin)
    try:
        a.sync({(vip, "eth0"): MAC})
        a.set_liveness_deadline(time.monotonic_ns() + 60 * 10**9)
        assert arping(lab, lab.clients[0].netns, vip, count=2) == [MAC, MAC]
        a_prog = a.attachments["eth0"].prog_id
    finally:
        a.close(keep_serving=True)
    b = responder(node.netns, pin_dir=pin)
    try:
        assert b.attachments["eth0"].prog_id != a_prog
        assert programs_on(node.netns, "eth0") == [(b.attachments["eth0"].prog_id, FUNCTION_NAME)]
        assert b.stats().per_address[(vip, "eth0")].replies == 2, "adopted owned table and counters"
        b.announce(vip, "eth0")  # the adopted address is owned here
        assert arping(lab, lab.clients[0].netns, vip, count=1) == [MAC]
        b.sync({(other, "eth0"): MAC})  # the first sync replaces what was adopted
        assert arping(lab, lab.clients[0].netns, vip, count=1, wait_s=1) == []
        assert arping(lab, lab.clients[0].netns, other, count=1) == [MAC]
        b.set_liveness_deadline(time.monotonic_ns() - 1)
    finally:
        b.close(keep_serving=True)
    # The pinned deadline is the last one set: past it, the program left attached answers nothing.
    assert arping(lab, lab.clients[0].netns, other, count=1, wait_s=1) == []
    c = responder(node.netns, pin_dir=pin)
    c.close()
    assert programs_on(node.netns, "eth0") == []
    assert not pin.exists()


@pytest.mark.root
def test_pin_directory_with_another_layout_is_replaced(
    lab: Lab, bpffs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, vip = lab.nodes[0], lab.vip_v4(4)
    pin = bpffs / "node0"
    old = responder(node.netns, pin_dir=pin, max_vips=64)  # another capacity: another layout
    old.sync({(vip, "eth0"): MAC})
    old_ids = pinning.PinDirectory(pin).map_ids()
    old.close(keep_serving=True)

    with caplog.at_level(logging.WARNING, logger="metallb_fast.dataplane.xdp"):
        new = responder(node.netns, pin_dir=pin)
    try:
        assert "do not have this program's layout" in caplog.text
        assert "starting with empty maps" in caplog.text
        new_ids = pinning.PinDirectory(pin).map_ids()
        assert set(new_ids) == set(old_ids) and not set(new_ids.values()) & set(old_ids.values())
        assert new.attachments == {} and programs_on(node.netns, "eth0") == [], "nothing adopted, the orphan swept"
        new.sync({(vip, "eth0"): MAC})
        assert arping(lab, lab.clients[0].netns, vip, count=1) == [MAC]
    finally:
        new.close()
    assert not pin.exists()

    # A directory holding a map of ours in name only (no stamp, another struct) is replaced the same way.
    pin.mkdir()
    fd = bpfsys.map_create(bpfsys.BPF_MAP_TYPE_HASH, 4, 4, 8, "vips_v4")
    bpfsys.obj_pin(fd, str(pin / "vips_v4"))
    os.close(fd)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="metallb_fast.dataplane.xdp"):
        r = responder(node.netns, pin_dir=pin)
    try:
        assert "do not have this program's layout" in caplog.text
        r.sync({(vip, "eth0"): MAC})
        assert arping(lab, lab.clients[0].netns, vip, count=1) == [MAC]
    finally:
        r.close()


# ------------------------------------------------------------------------- the pure parts (no root needed)


def test_pin_directory_must_be_on_a_bpf_filesystem(tmp_path: Path) -> None:
    with pytest.raises(ResponderError, match="not on a bpf filesystem"):
        pinning.prepare(tmp_path / "pins")


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"keep_serving_on_exit": False, "pin_dir": None, "liveness": 10.0, "interface": "eth0"}
    return argparse.Namespace(**{**base, **kw})


def test_respond_pins_only_when_asked() -> None:
    assert pin_dir_from_args(_args()) is None
    assert pin_dir_from_args(_args(pin_dir="/sys/fs/bpf/x")) == "/sys/fs/bpf/x"
    netns = os.stat("/proc/self/ns/net").st_ino
    assert pin_dir_from_args(_args(keep_serving_on_exit=True)) == f"/sys/fs/bpf/metallb-fast/respond-net{netns}-eth0"
    with pytest.raises(InputError, match="needs a liveness deadline"):
        pin_dir_from_args(_args(keep_serving_on_exit=True, liveness=0.0))


def test_default_pin_dir_names_one_directory() -> None:
    assert pinning.default_pin_dir("node-1.example") == Path("/sys/fs/bpf/metallb-fast/node-1.example")
    for bad in ("", "..", "a/b", 'x"y'):
        with pytest.raises(ValueError, match="pin name"):
            pinning.default_pin_dir(bad)


def test_layout_digest_ignores_order_and_sees_every_change() -> None:
    a = pinning.layout_digest(["vips_v4: type 1 key k", "config: type 2"])
    assert a == pinning.layout_digest(["config: type 2", "vips_v4: type 1 key k"])
    assert a != pinning.layout_digest(["vips_v4: type 1 key k2", "config: type 2"])
    assert a != pinning.layout_digest(["vips_v4: type 1 key k"])


@pytest.mark.root
def test_heartbeats_served_by_the_last_run_are_adopted(lab: Lab, bpffs: Path) -> None:
    # Liveness as heartbeats measure it survives a restart in place: the port and interfaces are pinned too.
    node, client = lab.nodes[0], lab.clients[0].netns
    targets = [node.ipv4("eth0"), node.ipv6("eth0")]
    pin = bpffs / "node0"
    a = responder(node.netns, pin_dir=pin)
    try:
        a.serve_heartbeats(PORT, ["eth0"])  # eth0 owns no address
        assert set(reflections(client, targets, seq=1)) == set(targets)
    finally:
        a.close(keep_serving=True)
    assert set(reflections(client, targets, seq=2)) == set(targets), "the kernel reflects while no process runs"
    b = responder(node.netns, pin_dir=pin)
    try:
        assert set(b.attachments) == {"eth0"}
        b.sync({})  # the adopted setting stands until serve_heartbeats changes it
        assert set(reflections(client, targets, seq=3)) == set(targets)
        b.serve_heartbeats(0, ())
        assert reflections(client, targets, seq=4, wait_s=1.5) == {}
        assert b.attachments == {}
    finally:
        b.close()
