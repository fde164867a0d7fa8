"""Reading real links into LinkInfo (speaker/links.py), inside a network namespace this test creates."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from metallb_fast.speaker.layer2 import InterfaceExclusion, can_answer
from tests.conftest import require, require_root

PREFIX = "mlbf-spklinks-"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _remove_stale_namespaces() -> None:
    """Namespaces left by a crashed earlier run (their pid is gone) are removed first."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def netns() -> Iterator[str]:
    require_root()
    require(subprocess.run(["which", "ip"], capture_output=True).returncode == 0, "iproute2 (ip)")
    _remove_stale_namespaces()
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_read_links_reports_flags_addresses_masters_and_macs(netns: str) -> None:
    from metallb_fast.speaker.links import read_links

    n = ["-n", netns]
    _ip(*n, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    _ip(*n, "link", "add", "vc", "type", "veth", "peer", "name", "vd")
    _ip(*n, "link", "add", "br0", "type", "bridge")
    _ip(*n, "link", "set", "vb", "master", "br0")
    _ip(*n, "link", "set", "va", "address", "02:00:5e:00:53:01")
    _ip(*n, "link", "set", "vc", "arp", "off")
    _ip(*n, "link", "set", "br0", "addrgenmode", "none")  # a global IPv6 address only, no link-local
    for dev in ("va", "vb", "vc", "br0", "lo"):
        _ip(*n, "link", "set", dev, "up")
    _ip(*n, "addr", "add", "192.0.2.1/24", "dev", "va")
    _ip(*n, "addr", "add", "fe80::1/64", "dev", "va", "nodad")
    _ip(*n, "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad")

    links = {link.name: link for link in read_links(netns)}
    assert set(links) == {"lo", "va", "vb", "vc", "vd", "br0"}
    va = links["va"]
    assert va.mac == bytes.fromhex("02005e005301")
    assert (va.up, va.broadcast, va.noarp, va.enslaved) == (True, True, False, False)
    assert va.has_ipv4 and va.has_ipv6_link_local
    assert links["vb"].enslaved and not links["va"].enslaved
    assert links["vc"].noarp
    assert not links["vd"].up
    assert not links["lo"].broadcast
    assert not links["br0"].has_ipv4

    everything = InterfaceExclusion(patterns=())
    v4 = ipaddress.ip_address("192.0.2.10")
    v6 = ipaddress.ip_address("2001:db8::10")
    assert sorted(name for name, link in links.items() if can_answer(link, v4, everything)) == ["va"]
    assert [name for name, link in links.items() if can_answer(link, v6, everything)] == ["va"]
    no_va = InterfaceExclusion(patterns=(r"^va",))
    assert [name for name, link in links.items() if can_answer(link, v4, no_va)] == []
