"""--xdp-mode: `respond` attaches in the mode asked for (`ip -d link`: "xdp" = native, "xdpgeneric" = generic),
answers in it, and says what to do when the driver cannot run XDP natively."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metallb_fast.dataplane.xdp import XdpPassProgram
from metallb_fast.lab import Lab
from metallb_fast.lab.tools import RespondFailed, start_respond
from tests.dataplane.conftest import arping, require_lab, respond

# What iproute2 prints after "mtu N" for each attach mode.
IP_LINK_MODE = {"native": "xdp", "generic": "xdpgeneric"}


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_lab()
    with Lab(nodes=1, clients=1) as lab:
        yield lab


def attached(lab: Lab, netns: str, ifname: str) -> str | None:
    """The XDP attach mode word `ip -d link` shows for `ifname`, None when no program is attached."""
    words = lab.run(netns, ["ip", "-d", "link", "show", "dev", ifname]).stdout.split()
    return next((word for word in words if word in {"xdp", "xdpgeneric", "xdpoffload", "xdpmulti"}), None)


@pytest.mark.root
@pytest.mark.parametrize(("mode", "expected"), [("native", "native"), ("generic", "generic"), ("auto", "generic")])
def test_respond_attaches_in_the_chosen_mode(lab: Lab, mode: str, expected: str) -> None:
    node, client = lab.nodes[0], lab.clients[0].netns
    vip = lab.vip_v4(0)
    # Native XDP_TX on a veth reaches the other end only when the peer runs a native program (ENVIRONMENT.md):
    # the bridge's port to the node gets an XDP_PASS one, as an operator choosing native on veth must arrange.
    peer = XdpPassProgram("n0l0", netns=lab.bridge_netns) if expected == "native" else None
    try:
        proc = respond(lab, node.netns, "xdp", "eth0", [str(vip)], extra=["--xdp-mode", mode])
        assert attached(lab, node.netns, "eth0") == IP_LINK_MODE[expected]
        assert arping(lab, client, vip) == [node.mac("eth0")] * 2
        counters = proc.stop()
    finally:
        if peer is not None:
            peer.close()
    assert [(a["interface"], a["mode"]) for a in counters["attachments"]] == [("eth0", expected)]
    assert counters["addresses"][0]["replies"] >= 2
    assert attached(lab, node.netns, "eth0") is None, "detached on the way out"


@pytest.mark.root
def test_native_where_the_driver_cannot_is_a_clear_error_and_auto_falls_back(lab: Lab) -> None:
    node = lab.nodes[0]
    vip = str(lab.vip_v4(0))
    respond(lab, node.netns, "xdp", "eth0", [vip]).stop()  # xdp loads here at all (else this skips, or fails in CI)
    with pytest.raises(RespondFailed) as failed:  # not respond(): that turns "cannot load" into a skip
        start_respond(lab, node.netns, "xdp", "lo", [vip], extra=["--xdp-mode", "native"])
    message = failed.value.stderr
    assert "cannot attach to interface lo: native:" in message
    assert "the driver of lo has no native XDP: attach mode generic, or auto, works on any interface" in message
    assert attached(lab, node.netns, "lo") is None
    proc = respond(lab, node.netns, "xdp", "lo", [vip], extra=["--xdp-mode", "auto"])
    assert attached(lab, node.netns, "lo") == "xdpgeneric", "auto: native first, generic when the driver has none"
    assert [a["mode"] for a in proc.stop()["attachments"]] == ["generic"]
