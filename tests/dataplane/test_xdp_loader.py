"""XdpResponder in real namespaces: real arping / ndisc6 clients see our MAC; attach, detach and stale cleanup.

Topology (metallb_fast.lab): node0 has eth0 on LAN 0 and eth1 on LAN 1; client0 has eth0 on LAN 0 only.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from metallb_fast.dataplane import bpfsys, packets, wire
from metallb_fast.dataplane.base import ResponderError, Verdict
from metallb_fast.dataplane.xdp import (
    FUNCTION_NAME,
    PASS_PROGRAM_NAME,
    SOMEWHERE,
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_SKB_MODE,
    XdpPassProgram,
    XdpResponder,
    _links,
    _open_ipr,
    attach,
    attach_order,
    detach,
    diff_entries,
    map_entries,
    program_holders,
)
from metallb_fast.lab import Lab, in_netns
from tests.conftest import require, require_root
from tests.dataplane.conftest import respond
from tests.dataplane.peers import PORT, reflections

MAC = bytes.fromhex("02005e0000aa")
MAC_TEXT = packets.format_mac(MAC)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("arping", "ndisc6", "ip"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    with Lab(nodes=1, clients=1, lans=2) as lab:
        yield lab


def responder(netns: str, *args: object, **kwargs: object) -> XdpResponder:
    with in_netns(netns):
        try:
            return XdpResponder(*args, **kwargs)  # type: ignore[arg-type]
        except ResponderError as exc:
            require(False, f"a loadable XDP responder ({exc})")
            raise


def arping(lab: Lab, address: IPv4Address, count: int = 2) -> list[str]:
    """MACs in the replies the real arping (iputils) gets from client0's eth0."""
    out = lab.run(lab.clients[0].netns, ["arping", "-c", str(count), "-w", "2", "-I", "eth0", str(address)],
                  check=False).stdout
    return [m.lower() for m in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", out)]


def ndisc6(lab: Lab, address: IPv6Address) -> list[str]:
    """Target link-layer addresses in the Neighbor Advertisements ndisc6 receives on client0's eth0."""
    out = lab.run(lab.clients[0].netns, ["ndisc6", "-1", "-r", "2", "-w", "700", str(address), "eth0"],
                  check=False).stdout
    return [m.lower() for m in re.findall(r"Target link-layer address: ([0-9A-Fa-f:]{17})", out)]


def xdp_on(lab: Lab, netns: str, ifname: str) -> str:
    """What `ip -d link show` reports about XDP on an interface ('' when nothing is attached)."""
    out = lab.run(netns, ["ip", "-d", "link", "show", "dev", ifname]).stdout
    return " ".join(line.strip() for line in out.splitlines() if "xdp" in line)


@pytest.mark.root
def test_clients_get_our_mac_only_where_owned_and_until_dropped(lab: Lab) -> None:
    node = lab.nodes[0]
    vip4, vip6, vip4_lan1 = lab.vip_v4(0), lab.vip_v6(0), lab.vip_v4(1)
    r = responder(node.netns)
    try:
        r.sync({(vip4, "eth0"): MAC, (vip6, "eth0"): MAC, (vip4_lan1, "eth1"): MAC})
        assert {name: a.mode for name, a in r.attachments.items()} == {"eth0": "generic", "eth1": "generic"}
        assert FUNCTION_NAME in xdp_on(lab, node.netns, "eth0")

        assert arping(lab, vip4) == [MAC_TEXT, MAC_TEXT]
        assert ndisc6(lab, vip6) == [MAC_TEXT]
        assert arping(lab, IPv4Address("192.0.2.250"), count=1) == []  # owned by nobody
        assert arping(lab, vip4_lan1, count=1) == []  # owned, but only on eth1 (LAN 1)

        stats = r.stats()
        assert stats.backend == "xdp"
        assert stats.per_address[(vip4, "eth0")].replies == 2
        assert stats.per_address[(vip6, "eth0")].replies >= 1
        assert stats.per_address[(vip4_lan1, "eth1")].requests == 0
        assert stats.declined[Verdict.WRONG_INTERFACE] >= 1
        assert stats.declined[Verdict.NOT_OWNED] >= 1
        assert Verdict.ANSWERED not in stats.declined

        with pytest.raises(ResponderError, match="nosuch0"):
            r.sync({(vip6, "eth0"): MAC, (vip4, "nosuch0"): MAC})
        # all but the missing interface applied: vip4 withdrawn from eth0, eth1 detached
        assert arping(lab, vip4, count=1) == []
        assert set(r.attachments) == {"eth0"}

        r.sync({(vip6, "eth0"): MAC})
        assert ndisc6(lab, vip6) == [MAC_TEXT]
        assert set(r.attachments) == {"eth0"}
        assert xdp_on(lab, node.netns, "eth1") == ""
    finally:
        r.close()
    r.close()  # idempotent
    assert xdp_on(lab, node.netns, "eth0") == ""
    assert ndisc6(lab, vip6) == []


@pytest.mark.root
def test_announce_sends_the_gratuitous_burst(lab: Lab) -> None:
    node, client = lab.nodes[0], lab.clients[0]
    vip4, vip6 = lab.vip_v4(2), lab.vip_v6(2)
    r = responder(node.netns)
    try:
        r.sync({(vip4, "eth0"): MAC, (vip6, "eth0"): MAC})
        with in_netns(client.netns):
            sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        with sniffer:
            sniffer.bind(("eth0", 0))
            sniffer.settimeout(0.2)
            r.announce(vip4, "eth0")  # from this thread, outside the node namespace: the responder's own
            r.announce(vip6, "eth0")
            expected = [*packets.gratuitous_arp(vip4, MAC), packets.unsolicited_na(vip6, MAC)]
            seen: list[bytes] = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not all(f in seen for f in expected):
                try:
                    seen.append(sniffer.recv(2048))
                except TimeoutError:
                    continue
        assert [f for f in seen if f in expected] == expected
        with pytest.raises(ValueError, match="not in the owned table"):
            r.announce(lab.vip_v4(3), "eth0")
    finally:
        r.close()


@pytest.mark.root
def test_stale_attachment_of_a_crashed_run_is_replaced_and_others_are_respected(lab: Lab) -> None:
    node = lab.nodes[0]
    crash = (
        "import os; from metallb_fast.dataplane.xdp import XdpResponder; "
        "XdpResponder(['eth1']); os._exit(0)"  # no close(), no atexit: what a SIGKILL leaves behind
    )
    lab.run(node.netns, [sys.executable, "-c", crash])
    stale = xdp_on(lab, node.netns, "eth1")
    assert FUNCTION_NAME in stale
    stale_id = int(re.search(r"prog/xdp id (\d+)", stale).group(1))  # type: ignore[union-attr]

    r = responder(node.netns, ["eth1"])
    try:
        assert r.attachments["eth1"].prog_id != stale_id
        assert f"id {r.attachments['eth1'].prog_id} " in xdp_on(lab, node.netns, "eth1")
    finally:
        r.close()
    assert xdp_on(lab, node.netns, "eth1") == ""

    foreign = XdpPassProgram("eth1", netns=node.netns)  # somebody else's program
    try:
        with in_netns(node.netns), pytest.raises(ResponderError, match="another XDP program"):
            XdpResponder(["eth1"])
        assert PASS_PROGRAM_NAME in xdp_on(lab, node.netns, "eth1")
    finally:
        foreign.close()
    assert xdp_on(lab, node.netns, "eth1") == ""


@pytest.mark.root
def test_start_sweeps_every_link_for_programs_of_killed_runs_only(lab: Lab) -> None:
    node = lab.nodes[0]
    # Somebody else's program, orphaned too (no process holds it): a name that is not ours is never touched.
    ipr = _open_ipr(node.netns)
    foreign_fd = bpfsys.load_xdp_pass("mlbf_foreign")
    foreign = attach(ipr, _links(ipr)["lo"], foreign_fd, bpfsys.prog_info_by_fd(foreign_fd).id, "mlbf_foreign",
                     "generic")
    os.close(foreign_fd)
    running = respond(lab, node.netns, "xdp", "eth1", [str(lab.vip_v4(5, lan=1))])
    try:
        live = xdp_on(lab, node.netns, "eth1")
        assert FUNCTION_NAME in live

        r = responder(node.netns, ["eth0"])
        r.close()
        assert xdp_on(lab, node.netns, "eth1") == live, "a live run's program stays"

        running.proc.kill()  # SIGKILL: no detach, no atexit; the attachment alone keeps the program loaded
        running.proc.communicate(timeout=30)
        assert xdp_on(lab, node.netns, "eth1") == live

        r = responder(node.netns, ["eth0"])  # eth1 is not among its interfaces
        try:
            assert xdp_on(lab, node.netns, "eth1") == ""
            assert "mlbf_foreign" in xdp_on(lab, node.netns, "lo")
        finally:
            r.close()
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.communicate(timeout=30)
        detach(ipr, foreign)
        ipr.close()
    assert xdp_on(lab, node.netns, "lo") == ""


@pytest.mark.root
def test_native_mode_delivers_when_the_veth_peer_runs_a_pass_program(lab: Lab) -> None:
    node = lab.nodes[0]
    assert lab.bridge_netns is not None
    peer = "n0l0"  # node0 eth0's veth peer: the bridge port in the LAN namespace
    vip4 = lab.vip_v4(4)
    with XdpPassProgram(peer, netns=lab.bridge_netns) as pass_program:
        assert PASS_PROGRAM_NAME in xdp_on(lab, lab.bridge_netns, peer)
        r = responder(node.netns, mode="native")
        try:
            r.sync({(vip4, "eth0"): MAC})
            assert r.attachments["eth0"].mode == "native"
            attached = xdp_on(lab, node.netns, "eth0")
            assert " xdp " in attached and "xdpgeneric" not in attached
            assert arping(lab, vip4) == [MAC_TEXT, MAC_TEXT]
        finally:
            r.close()
        pass_program.close()  # idempotent with the context exit
    assert xdp_on(lab, lab.bridge_netns, peer) == ""
    assert xdp_on(lab, node.netns, "eth0") == ""


@pytest.mark.root
def test_heartbeat_interfaces_stay_attached_until_neither_owned_nor_served(lab: Lab) -> None:
    node = lab.nodes[0]
    vip4 = lab.vip_v4(6)
    r = responder(node.netns)
    try:
        r.serve_heartbeats(PORT, ["eth1"])  # owns nothing: attached for heartbeats alone
        assert set(r.attachments) == {"eth1"} and FUNCTION_NAME in xdp_on(lab, node.netns, "eth1")
        r.sync({(vip4, "eth0"): MAC})  # a sync that does not list eth1 leaves it attached
        assert set(r.attachments) == {"eth0", "eth1"}
        r.sync({})
        assert set(r.attachments) == {"eth1"} and xdp_on(lab, node.netns, "eth0") == ""
        r.serve_heartbeats(PORT, ["eth0"])
        assert set(r.attachments) == {"eth0"} and xdp_on(lab, node.netns, "eth1") == ""
        r.serve_heartbeats(0, ["eth0"])  # port 0: off, whatever the interfaces
        assert r.attachments == {} and xdp_on(lab, node.netns, "eth0") == ""
        with pytest.raises(ResponderError, match="nosuch0"):
            r.serve_heartbeats(PORT, ["nosuch0"])
        with pytest.raises(ResponderError, match="nosuch0"):
            r.sync({(vip4, "eth0"): MAC})  # the setting stands: every sync names the missing interface
        assert set(r.attachments) == {"eth0"}, "the rest is applied"
        r.serve_heartbeats(0, ())
        r.sync({})
    finally:
        r.close()
    with pytest.raises(ResponderError, match="after close"):
        r.serve_heartbeats(PORT, ["eth0"])


@pytest.mark.root
def test_syncs_on_attached_interfaces_read_no_link_dump_and_a_recreated_link_is_attached_again(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An address change on interfaces already carrying the program costs no netlink dump; a link deleted and made
    again under the same name (a new ifindex) is noticed and gets the program again."""
    from metallb_fast.dataplane import xdp

    node = lab.nodes[0]
    dumps: list[int] = []
    real_links = xdp._links
    monkeypatch.setattr(xdp, "_links", lambda ipr: dumps.append(1) or real_links(ipr))

    def pair(action: str) -> None:
        lab.run(node.netns, ["ip", "link", *(["add", "mlbt0", "type", "veth", "peer", "name", "mlbt1"]
                                             if action == "add" else ["del", "mlbt0"])])
        if action == "add":
            for name in ("mlbt0", "mlbt1"):
                lab.run(node.netns, ["ip", "link", "set", name, "up"])

    pair("add")
    r = responder(node.netns)
    try:
        r.sync({(lab.vip_v4(7), "eth0"): MAC, (lab.vip_v4(7), "mlbt0"): MAC})
        before = len(dumps)
        r.sync({(lab.vip_v4(8), "eth0"): MAC, (lab.vip_v4(8), "mlbt0"): MAC})
        assert len(dumps) == before, "the interfaces were attached already: no dump"
        assert arping(lab, lab.vip_v4(8)) and not arping(lab, lab.vip_v4(7), count=1)
        old_index = r.attachments["mlbt0"].ifindex
        pair("del")
        pair("add")
        r.sync({(lab.vip_v4(8), "eth0"): MAC, (lab.vip_v4(8), "mlbt0"): MAC})
        assert len(dumps) == before + 1
        attachment = r.attachments["mlbt0"]
        assert attachment.ifindex != old_index and FUNCTION_NAME in xdp_on(lab, node.netns, "mlbt0")
        assert arping(lab, lab.vip_v4(8))
    finally:
        r.close()
        lab.run(node.netns, ["ip", "link", "del", "mlbt0"], check=False)


@pytest.mark.root
def test_native_mode_on_veth_reflects_heartbeats_the_sender_left_unfinished(lab: Lab) -> None:
    # Native XDP_TX on veth builds a new skb, so the receiver checks the UDP checksum, and a sender with checksum
    # offload sends it unfinished (the pseudo-header sum). An updated checksum would be wrong; a computed one is not.
    node, client = lab.nodes[0], lab.clients[0].netns
    assert lab.bridge_netns is not None
    targets = [node.ipv4("eth0"), node.ipv6("eth0")]
    with XdpPassProgram("n0l0", netns=lab.bridge_netns):
        r = responder(node.netns, mode="native")
        try:
            r.serve_heartbeats(PORT, ["eth0"])
            assert r.attachments["eth0"].mode == "native"
            assert set(reflections(client, targets, seq=1)) == set(targets)
            assert r.stats().heartbeats >= 2
        finally:
            r.close()


def test_bad_mode_is_refused_before_compiling() -> None:
    with pytest.raises(ValueError, match="attach mode 'turbo'"):
        XdpResponder(mode="turbo")



# ------------------------------------------------------------------------- the pure parts (no root needed)


def test_map_entries_add_one_marker_per_address_and_validate() -> None:
    a, b = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")
    entries = map_entries({(a, 3): MAC, (a, 4): MAC, (b, 3): MAC})
    assert entries == {(a, 3): MAC, (a, 4): MAC, (a, SOMEWHERE): bytes(6), (b, 3): MAC, (b, SOMEWHERE): bytes(6)}
    with pytest.raises(ValueError, match="ifindex 0"):
        map_entries({(a, 0): MAC})
    with pytest.raises(ValueError, match="must be 6 bytes"):
        map_entries({(a, 3): b"\x02"})


def test_diff_entries_leaves_unchanged_keys_alone() -> None:
    a, b, c = (IPv4Address(f"192.0.2.{i}") for i in (1, 2, 3))
    current = {(a, 3): MAC, (b, 3): MAC, (c, 3): MAC}
    wanted = {(a, 3): MAC, (b, 3): bytes.fromhex("02005e0000bb"), (c, 4): MAC}
    upserts, deletes = diff_entries(current, wanted)
    assert upserts == {(b, 3): bytes.fromhex("02005e0000bb"), (c, 4): MAC}
    assert deletes == [(c, 3)]


@pytest.mark.parametrize(
    ("mode", "kind", "expected"),
    [
        ("auto", "veth", ["generic"]),
        ("auto", None, ["native", "generic"]),
        ("auto", "bond", ["native", "generic"]),
        ("native", "veth", ["native"]),
        ("generic", None, ["generic"]),
    ],
)
def test_attach_order(mode: str, kind: str | None, expected: list[str]) -> None:
    names = {XDP_FLAGS_DRV_MODE: "native", XDP_FLAGS_SKB_MODE: "generic"}
    assert [names[flag] for flag in attach_order(mode, kind)] == expected


def test_verdict_indices_follow_base_verdict_order() -> None:
    flags = [flag for flag in wire.cflags() if flag.startswith("-DVERDICT_")]
    assert flags[0] == "-DVERDICT_ANSWERED=0"
    assert flags[-1] == f"-DVERDICT_COUNT={len(Verdict)}"
    assert [f.split("=")[0].removeprefix("-DVERDICT_") for f in flags[:-1]] == [v.name for v in Verdict]


def test_program_holders_reads_bpf_prog_fds_of_every_process(tmp_path: Path) -> None:
    def process(pid: str, fds: dict[str, tuple[str, str]]) -> None:
        (tmp_path / pid / "fd").mkdir(parents=True)
        (tmp_path / pid / "fdinfo").mkdir()
        for fd, (target, info) in fds.items():
            (tmp_path / pid / "fd" / fd).symlink_to(target)  # dangling, as /proc's anon inodes look to readlink
            (tmp_path / pid / "fdinfo" / fd).write_text(info)

    process("10", {"3": ("anon_inode:bpf-prog", "pos:\t0\nprog_type:\t6\nprog_id:\t77\nrun_cnt:\t0\n"),
                   "4": ("anon_inode:bpf-map", "map_id:\t5\n"),
                   "5": ("socket:[123]", "prog_id:\t99\n")})  # only bpf-prog fds count
    process("11", {"7": ("anon_inode:bpf-prog", "prog_id:\t78\n")})
    (tmp_path / "12").mkdir()  # exited between the listing and the read: no fd directory
    (tmp_path / "self").mkdir()
    assert program_holders(tmp_path) == {77: 10, 78: 11}
