"""Network-namespace topologies: node and client namespaces joined by per-LAN bridges (or one veth pair).

    namespace <prefix>client0      namespace <prefix>lan        namespace <prefix>node0
      eth0 (.100, ::100) ─── c0l0 ─ br0 ─ n0l0 ─────────── eth0 (192.0.2.10, 2001:db8::10)     LAN 0
                                    br1 ─ n0l1 ─────────── eth1 (198.51.100.10, 2001:db8:1::10) LAN 1
    direct=True: client0 eth0 ── veth ── node0 eth0 (no bridge namespace)

Bridges live in their own namespace, so nothing is added to the host namespace. Addresses come from the
documentation ranges only; IPv6 DAD is off on every lab link so tests are not delayed by tentative addresses.
Teardown runs from the context manager, atexit, and SIGTERM/SIGHUP (turned into SystemExit while a lab is up);
a lab killed outright is removed by the next lab's cleanup_stale().
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_network
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, netns

from metallb_fast.dataplane.netns import in_netns
from metallb_fast.dataplane.packets import format_mac
from metallb_fast.lab.stale import cleanup_stale, register, unregister

log = logging.getLogger(__name__)

LAN_V4 = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
LAN_V6 = ("2001:db8::/64", "2001:db8:1::/64", "2001:db8:2::/64")
NODE_HOST = 10  # node i on a LAN: .10+i / ::10+i (hex digits in IPv6, like the VIPs)
CLIENT_HOST = 100
VIP_V4_HOST = 200  # 192.0.2.200 + i
VIP_V6_HOST = 0x200  # 2001:db8::200 + i
MAX_NODES = 80
MAX_CLIENTS = 90
IFA_F_NODAD = 0x02


@dataclass(frozen=True)
class Endpoint:
    """One interface of a lab host, on one LAN."""

    ifname: str
    lan: int
    mac: bytes
    ipv4: IPv4Interface
    ipv6: IPv6Interface


@dataclass(frozen=True)
class Host:
    """A node or client namespace and its interfaces."""

    name: str  # "node0", "client0"
    netns: str
    endpoints: tuple[Endpoint, ...]

    @property
    def interfaces(self) -> list[str]:
        return [e.ifname for e in self.endpoints]

    def endpoint(self, ifname: str) -> Endpoint:
        for e in self.endpoints:
            if e.ifname == ifname:
                return e
        raise KeyError(f"{self.name} has no interface {ifname!r} (it has {', '.join(self.interfaces)})")

    def mac(self, ifname: str) -> bytes:
        return self.endpoint(ifname).mac

    def ipv4(self, ifname: str) -> IPv4Address:
        return self.endpoint(ifname).ipv4.ip

    def ipv6(self, ifname: str) -> IPv6Address:
        return self.endpoint(ifname).ipv6.ip


def _host_address(lan: int, host: int) -> tuple[IPv4Interface, IPv6Interface]:
    v4, v6 = ip_network(LAN_V4[lan]), ip_network(LAN_V6[lan])
    # IPv6 host part reads like the IPv4 one: .10 -> ::10, .200 -> ::200
    return (
        IPv4Interface(f"{v4.network_address + host}/{v4.prefixlen}"),
        IPv6Interface(f"{v6.network_address + int(str(host), 16)}/{v6.prefixlen}"),
    )


def _mac(role: int, lan: int, index: int) -> bytes:
    return bytes((0x02, 0x6D, 0x6C, role, lan, index + 1))  # locally administered, "ml"


def plan_hosts(prefix: str, nodes: int, clients: int, lans: int) -> tuple[list[Host], list[Host]]:
    """The hosts of a topology (pure: names, MACs and addresses; nothing is created)."""
    node_hosts = [
        Host(
            f"node{i}",
            f"{prefix}node{i}",
            tuple(
                Endpoint(f"eth{lan}", lan, _mac(0, lan, i), *_host_address(lan, NODE_HOST + i)) for lan in range(lans)
            ),
        )
        for i in range(nodes)
    ]
    client_hosts = [
        Host(
            f"client{i}",
            f"{prefix}client{i}",
            (Endpoint("eth0", 0, _mac(1, 0, i), *_host_address(0, CLIENT_HOST + i)),),
        )
        for i in range(clients)
    ]
    return node_hosts, client_hosts


HOST_SYSCTLS = {
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.default.dad_transmits": "0",
}
BRIDGE_SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


class Lab:
    """A throw-away topology of node and client namespaces; use as a context manager."""

    def __init__(
        self, nodes: int = 1, clients: int = 1, lans: int = 1, direct: bool = False, prefix: str | None = None
    ) -> None:
        if not 1 <= lans <= len(LAN_V4):
            raise ValueError(f"Lab lans={lans}: must be 1..{len(LAN_V4)} (one documentation range per LAN)")
        if not (0 <= nodes <= MAX_NODES and 0 <= clients <= MAX_CLIENTS):
            raise ValueError(f"Lab nodes={nodes} clients={clients}: at most {MAX_NODES} nodes, {MAX_CLIENTS} clients")
        if direct and (nodes, clients, lans) != (1, 1, 1):
            raise ValueError(
                f"Lab direct=True joins exactly 1 node and 1 client on 1 LAN, got {nodes}/{clients}/{lans}"
            )
        self.prefix = prefix or f"mlbf-{secrets.token_hex(4)}-"
        self.direct = direct
        self.lans = lans
        self.nodes, self.clients = plan_hosts(self.prefix, nodes, clients, lans)
        self.bridge_netns: str | None = None if direct else f"{self.prefix}lan"
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._old_handlers: dict[int, Any] = {}
        self._owner_pid = os.getpid()

    # -- addresses -------------------------------------------------------------------------------------------

    def vip_v4(self, i: int = 0, lan: int = 0) -> IPv4Address:
        """A load-balancer address on `lan` that no lab host has: 192.0.2.200 + i on LAN 0."""
        return IPv4Address(ip_network(LAN_V4[lan]).network_address + VIP_V4_HOST + i)

    def vip_v6(self, i: int = 0, lan: int = 0) -> IPv6Address:
        """2001:db8::200 + i on LAN 0."""
        return IPv6Address(ip_network(LAN_V6[lan]).network_address + VIP_V6_HOST + i)

    @property
    def namespaces(self) -> list[str]:
        names = [h.netns for h in (*self.nodes, *self.clients)]
        return names if self.bridge_netns is None else [self.bridge_netns, *names]

    # -- lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"lab {self.prefix} was already started")
        self._started = True
        self._owner_pid = os.getpid()
        cleanup_stale()
        register(self.prefix)
        atexit.register(self.close)
        self._install_signal_handlers()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop tracked processes, delete every namespace (and with them all links). Idempotent."""
        if os.getpid() != self._owner_pid:
            return  # a forked child (pyroute2 forks to create namespaces) runs atexit too: not its lab
        with self._lock:
            if self._closed or not self._started:
                return
            self._closed = True
        for proc in self._procs:
            _stop(proc)
        for name in reversed(self._created):
            try:
                netns.remove(name)
            except OSError as exc:
                log.warning("lab %s: could not remove namespace %s: %s", self.prefix, name, exc)
        unregister(self.prefix)
        self._restore_signal_handlers()
        atexit.unregister(self.close)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                self._old_handlers[signum] = signal.signal(signum, _exit_on_signal)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._old_handlers.items():
            if signal.getsignal(signum) is _exit_on_signal:
                signal.signal(signum, handler)
        self._old_handlers.clear()

    # -- building --------------------------------------------------------------------------------------------

    def _build(self) -> None:
        hosts = (*self.nodes, *self.clients)
        namespaces = [(h.netns, HOST_SYSCTLS) for h in hosts]
        if self.bridge_netns is not None:
            namespaces.insert(0, (self.bridge_netns, BRIDGE_SYSCTLS))
        for name, sysctls in namespaces:
            netns.create(name)
            self._created.append(name)
            with _rtnl(name) as ipr:
                # before any other link exists, so every link inherits the "default" settings
                for key, value in sysctls.items():
                    Path("/proc/sys", key.replace(".", "/")).write_text(value)
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        if self.direct:
            node, client = self.nodes[0], self.clients[0]
            with _rtnl(node.netns) as ipr:
                _add_veth(ipr, node.endpoints[0], client.netns, "eth0", client.endpoints[0].mac)
            with _rtnl(client.netns) as ipr:
                _configure(ipr, client.endpoints[0])
            self._wait_until_up()
            return
        assert self.bridge_netns is not None
        ports: list[tuple[str, int]] = []
        for role, group in (("n", self.nodes), ("c", self.clients)):
            for i, host in enumerate(group):
                with _rtnl(host.netns) as ipr:
                    for ep in host.endpoints:
                        port = f"{role}{i}l{ep.lan}"
                        _add_veth(ipr, ep, self.bridge_netns, port, None)
                        ports.append((port, ep.lan))
        with _rtnl(self.bridge_netns) as ipr:
            for lan in range(self.lans):
                ipr.link("add", ifname=f"br{lan}", kind="bridge", br_mcast_snooping=0, br_stp_state=0)
                ipr.link("set", index=ipr.link_lookup(ifname=f"br{lan}")[0], state="up")
            for port, lan in ports:
                bridge = ipr.link_lookup(ifname=f"br{lan}")[0]
                ipr.link("set", index=ipr.link_lookup(ifname=port)[0], master=bridge, state="up")
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 10.0) -> None:
        """Carrier and bridge forwarding come up asynchronously; a probe sent before that is lost."""
        deadline = time.monotonic() + timeout
        pending = list(self.namespaces)
        while pending:
            with _rtnl(pending[0]) as ipr:
                down = [
                    link.get("ifname")
                    for link in ipr.get_links()
                    if link.get("ifname") != "lo" and link.get("operstate") != "UP"
                ]
            if not down:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"lab {self.prefix}: links {down} in {pending[0]} not up after {timeout} s")
            time.sleep(0.02)

    # -- processes -------------------------------------------------------------------------------------------

    def run(
        self, namespace: str, argv: Sequence[str], check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside `namespace` (via `ip netns exec`, which also remounts /sys) and wait for it."""
        return subprocess.run(
            ["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, check=check, timeout=timeout
        )

    def popen(self, namespace: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start argv inside `namespace`; the lab terminates it (by pid) at teardown if still running."""
        proc = subprocess.Popen(["ip", "netns", "exec", namespace, *argv], **kw)
        self._procs.append(proc)
        return proc


@contextlib.contextmanager
def _rtnl(namespace: str) -> Iterator[IPRoute]:
    """A netlink socket opened by this thread inside `namespace`; also makes /proc/sys/net that namespace's.

    (pyroute2's own IPRoute(netns=...) forks helpers and was seen to hang with several instances open.)
    """
    with in_netns(namespace), IPRoute() as ipr:
        yield ipr


def _add_veth(ipr: IPRoute, ep: Endpoint, peer_netns: str, peer: str, peer_mac: bytes | None) -> None:
    """The veth `ep.ifname` in ipr's namespace, its peer `peer` created directly in `peer_netns`."""
    peer_spec: dict[str, Any] = {"ifname": peer, "net_ns_fd": peer_netns}
    if peer_mac is not None:
        peer_spec["address"] = format_mac(peer_mac)
    ipr.link("add", ifname=ep.ifname, kind="veth", address=format_mac(ep.mac), peer=peer_spec)
    _configure(ipr, ep)


def _configure(ipr: IPRoute, ep: Endpoint) -> None:
    index = ipr.link_lookup(ifname=ep.ifname)[0]
    ipr.addr("add", index=index, address=str(ep.ipv4.ip), prefixlen=ep.ipv4.network.prefixlen)
    ipr.addr("add", index=index, address=str(ep.ipv6.ip), prefixlen=ep.ipv6.network.prefixlen, flags=IFA_F_NODAD)
    ipr.link("set", index=index, state="up")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def _exit_on_signal(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through Lab.__exit__ / atexit, so teardown runs
