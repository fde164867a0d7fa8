"""A whole metallb-fast cluster on one machine: a real API server, the controller, one speaker per lab node.

Nodes are network namespaces on a LAN with a client; the API server (host loopback) is reachable inside each
node through LoopbackProxy; the controller runs in the host namespace and each speaker inside its node, as
`metallb-fast controller|speaker` processes, exactly as a DaemonSet would run them. Used by `metallb-fast demo`
and the end-to-end tests, so both drive the same wiring.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import orjson
import yaml

from metallb_fast.dataplane.netns import in_netns
from metallb_fast.lab.loopback_proxy import LoopbackProxy
from metallb_fast.lab.probe import (
    ECHO_PORT,
    PROBE_INTERVAL_S,
    SAMPLER_HOST,
    ProbeLog,
    ProbeRecords,
    steady_owner,
    terminate,
    wait_ready,
)
from metallb_fast.lab.processes import ManagedProcess
from metallb_fast.lab.tools import arping, ndisc
from metallb_fast.lab.topology import Host, Lab
from metallb_fast.testing.kubeenv import KubeEnv

METALLB_FAST = [sys.executable, "-m", "metallb_fast.cli"]
METALLB_NAMESPACE = "metallb-system"
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
CRD_DIR = DEPLOY_DIR / "crds"
STOP_TIMEOUT_S = 15.0
SPEAKER_LABELS = {"app": "metallb", "component": "speaker"}  # MetalLB's METALLB_ML_LABELS


@dataclass
class ClusterLab:
    kube: KubeEnv
    log_dir: Path
    nodes: int = 3
    backend: str = "auto"
    # Memberlist between the speakers (None: off), with this timing preset; the speakers find each other through
    # speaker Pods registered with their node's address, as in a DaemonSet with hostNetwork.
    memberlist_timing: str | None = None
    liveness_timeout_s: float | None = None
    # What a SIGTERM means to the speakers (--on-sigterm): "handover" by default, so that stopping the lab hands
    # every address over and detaches every XDP program; "auto" to exercise restarts as a DaemonSet update does.
    on_sigterm: str = "handover"
    exclude_l2_file: Path | None = None  # --exclude-l2-file of every speaker (None: the default path, absent here)
    lab: Lab = field(init=False)
    processes: dict[str, ManagedProcess] = field(default_factory=dict, init=False)
    returncodes: dict[str, int | None] = field(default_factory=dict, init=False)
    _speaker_argv: dict[str, list[str]] = field(default_factory=dict, init=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)
    _member_views: dict[str, tuple[int, set[str]]] = field(default_factory=dict, init=False)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ClusterLab:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop_programs()
        finally:
            self._stack.close()

    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.kube.kubectl("create", "namespace", METALLB_NAMESPACE, check=False)
        self.lab = self._stack.enter_context(Lab(nodes=self.nodes, clients=1))
        for host in self.lab.nodes:
            self.kube.create_node(host.name, internal_ip=str(host.ipv4("eth0")))
        self._stack.callback(self._delete_nodes)
        # The same port inside every node namespace as on the host: the kubeconfigs work unchanged there.
        nodes = [h.netns for h in self.lab.nodes]
        self._stack.enter_context(LoopbackProxy(nodes, port=self.kube.port, target_port=self.kube.port))
        # Each program with its own ServiceAccount's token, bound by deploy/'s roles: what a user deploys.
        self.kube.apply_deploy_rbac(DEPLOY_DIR)
        common = ["--metrics-port", "0", "--log-level", "debug"]
        controller_config = ["--kubeconfig", str(self.kube.kubeconfig_path("controller"))]
        speaker_config = ["--kubeconfig", str(self.kube.kubeconfig_path("speaker"))]
        self._spawn("controller", None, [*METALLB_FAST, "controller", *controller_config, *common])
        if self.memberlist_timing is not None:
            self._register_speaker_pods()
        bpffs = self._mount_bpffs()
        for host in self.lab.nodes:
            argv = [*METALLB_FAST, "speaker", *speaker_config, *common, "--node-name", host.name,
                    "--backend", self.backend, *self._memberlist_arguments(host.name)]
            if self.liveness_timeout_s is not None:
                argv += ["--liveness-timeout", str(self.liveness_timeout_s)]
            argv += ["--on-sigterm", self.on_sigterm, "--pin-dir", str(bpffs / host.name)]
            if self.exclude_l2_file is not None:
                argv += ["--exclude-l2-file", str(self.exclude_l2_file)]
            self._speaker_argv[host.name] = argv
            self._spawn(f"speaker-{host.name}", host.netns, argv)

    def _mount_bpffs(self) -> Path:
        """A bpf filesystem of the lab's own for the speakers' pinned XDP maps (the host's /sys/fs/bpf is not
        visible under `ip netns exec`, which remounts /sys), so a restarted speaker adopts its predecessor's."""
        mountpoint = self.log_dir / "bpffs"
        mountpoint.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "bpf", "bpf", str(mountpoint)], check=True, capture_output=True)
        self._stack.callback(lambda: subprocess.run(["umount", "-l", str(mountpoint)], check=False))
        return mountpoint

    def _register_speaker_pods(self) -> None:
        """One speaker Pod per node with the node's address as its IP (hostNetwork), and the memberlist Secret."""
        secret_dir = self.log_dir / "ml-secret"
        secret_dir.mkdir(exist_ok=True)
        (secret_dir / "secretkey").write_text("mlb-fast-lab-secret-22")  # 22 chars, like the controller makes
        for host in self.lab.nodes:
            self.kube.create_ready_pod(METALLB_NAMESPACE, f"speaker-{host.name}", host.name, SPEAKER_LABELS,
                                       [str(host.ipv4("eth0"))])
        self._stack.callback(
            lambda: self.kube.kubectl("delete", "pods", "-n", METALLB_NAMESPACE, "-l", "component=speaker",
                                      "--wait=false", check=False)
        )

    def _memberlist_arguments(self, node_name: str) -> list[str]:
        if self.memberlist_timing is None:
            return []
        host = next(h for h in self.lab.nodes if h.name == node_name)
        return ["--ml-bindaddr", str(host.ipv4("eth0")), "--ml-labels", "app=metallb,component=speaker",
                "--ml-namespace", METALLB_NAMESPACE, "--ml-secret-key-path", str(self.log_dir / "ml-secret"),
                "--ml-timing", self.memberlist_timing]

    def kill_speaker(self, node_name: str) -> None:
        """SIGKILL one speaker (our own child, by its pid): no leave, no detach, as when its node dies."""
        self.processes[f"speaker-{node_name}"].kill()

    def forget_fast_path(self, node_name: str) -> None:
        """What a reboot of the node loses: the XDP programs on its links and the maps its speaker pinned."""
        host = self.host(node_name)
        for mode in ("xdp", "xdpgeneric"):
            self.lab.run(host.netns, ["ip", "link", "set", "dev", "eth0", mode, "off"])
        shutil.rmtree(self.log_dir / "bpffs" / node_name, ignore_errors=True)

    def restart_speaker(self, node_name: str) -> None:
        """Start the speaker of `node_name` again (after kill_speaker or a stop), as the kubelet would."""
        host = next(h for h in self.lab.nodes if h.name == node_name)
        self._spawn(f"speaker-{node_name}", host.netns, self._speaker_argv[node_name], append=True)

    def _spawn(self, name: str, netns: str | None, argv: list[str], append: bool = False) -> None:
        launch = subprocess.Popen if netns is None else functools.partial(self.lab.popen, netns)
        self.processes[name] = ManagedProcess(name, argv, self.log_dir / f"{name}.log", launch=launch)
        self.processes[name].start(truncate=not append)

    def stop_programs(self) -> dict[str, int | None]:
        """SIGTERM every program and wait; returns each exit status (a program that needed SIGKILL gets KILLED)."""
        for proc in self.processes.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in self.processes.items():
            self.returncodes[name] = proc.wait_or_kill(STOP_TIMEOUT_S)
        self.processes.clear()
        return dict(self.returncodes)

    def stop_and_verify(self, services_namespaces: Sequence[str] = ()) -> None:
        """The end of a test's run: SIGTERM every program, delete the Services of `services_namespaces` and every
        pool and L2Advertisement, then check that every program exited 0 and that each speaker detached its XDP
        program (AssertionError with the logs of the programs that did not)."""
        codes = self.stop_programs()
        for namespace in services_namespaces:
            self.kube.kubectl("delete", "services", "--all", "-n", namespace, check=False)
        self.kube.kubectl("delete", "ipaddresspools,l2advertisements", "--all", "-n", METALLB_NAMESPACE, check=False)
        failed = {name: (code, self.tail(name)) for name, code in codes.items() if code != 0}
        if failed:
            raise AssertionError(f"programs did not exit cleanly on SIGTERM: {failed}")
        if self.xdp_attached():
            raise AssertionError(f"an XDP program outlived its speaker on {self.xdp_attached()}")

    def _delete_nodes(self) -> None:
        self.kube.kubectl("delete", "nodes", *[h.name for h in self.lab.nodes], "--wait=false", check=False)

    def xdp_attached(self) -> list[str]:
        """Lab nodes that still have an XDP program on some link."""
        found = []
        for host in self.lab.nodes:
            links = self.lab.run(host.netns, ["ip", "-d", "link", "show"], check=True).stdout
            if "xdp" in links:
                found.append(host.name)
        return found

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def dead_programs(self) -> dict[str, str]:
        return {
            name: f"exit {proc.returncode}:\n{self.tail(name)}"
            for name, proc in self.processes.items()
            if not proc.alive()
        }

    # ------------------------------------------------------------------ API helpers
    def get(self, *args: str) -> Any:
        return orjson.loads(self.kube.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, manifest: str | Path) -> None:
        if isinstance(manifest, Path):
            self.kube.kubectl("apply", "-f", str(manifest))
        else:
            self.kube.kubectl("apply", "-f", "-", input=manifest)

    def ingress(self, namespace: str, name: str) -> list[str]:
        svc = self.get("service", "-n", namespace, name)
        return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    def add_ready_pods(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """One ready dual-stack Pod per node matching `labels`: every node has a serving endpoint of the Service,
        whatever its IP families. (Pod IPs are only API data here; no packet is sent to them.)"""
        for i, host in enumerate(self.lab.nodes):
            pod_ips = [f"203.0.113.{100 + i}", f"2001:db8:100::{100 + i}"]
            self.kube.create_ready_pod(namespace, f"{name}-{i}", host.name, labels, pod_ips)

    def plan(self, dead: Sequence[str] = ()) -> dict[str, Any]:
        """`metallb-fast plan -o json` over the live objects: what the programs should have decided (with the
        speakers of `dead` down)."""
        documents = []
        for kind in ("nodes", "services", "endpointslices", "namespaces"):
            documents += self.get(kind, "-A")["items"]
        for kind, singular in (("ipaddresspools", "IPAddressPool"), ("l2advertisements", "L2Advertisement")):
            for item in self.get(kind, "-n", METALLB_NAMESPACE)["items"]:
                item["apiVersion"], item["kind"] = "metallb.io/v1beta1", singular
                documents.append(item)
        manifest = self.log_dir / "plan-input.yaml"
        manifest.write_text(yaml.safe_dump_all(documents))
        dead_flags = [flag for node in dead for flag in ("--dead", node)]
        result = subprocess.run(
            [*METALLB_FAST, "plan", "-f", str(manifest), "-o", "json", *dead_flags],
            capture_output=True, text=True, check=True,
        )
        return orjson.loads(result.stdout)

    def planned_nodes(self, namespace: str, name: str, dead: Sequence[str] = ()) -> dict[str, str | None]:
        """address -> the node `plan` says announces it (with the speakers of `dead` down)."""
        entry = next(
            (s for s in self.plan(dead)["services"] if s["namespace"] == namespace and s["name"] == name), None
        )
        return {a["ip"]: a["node"] for a in (entry or {}).get("announcements") or []}

    # ------------------------------------------------------------------ the client's view
    def resolve(self, address: str) -> str | None:
        """The MAC the client's real arping (IPv4) or ndisc6 (IPv6) learns for `address`, or None."""
        client = self.lab.clients[0].netns
        ip = ip_address(address)
        if isinstance(ip, IPv4Address):
            macs = arping(self.lab, client, ip)
            return macs[0].hex(":") if macs else None
        assert isinstance(ip, IPv6Address)
        mac = ndisc(self.lab, client, ip)
        return mac.hex(":") if mac else None

    def node_mac(self, node_name: str) -> str:
        host = next(h for h in self.lab.nodes if h.name == node_name)
        return host.mac("eth0").hex(":")

    # ------------------------------------------------------------------ faults and the failover probe
    def host(self, node_name: str) -> Host:
        for host in self.lab.nodes:
            if host.name == node_name:
                return host
        raise KeyError(f"no lab node {node_name!r} (nodes: {', '.join(h.name for h in self.lab.nodes)})")

    def speaker_pid(self, node_name: str) -> int:
        """The pid of the node's speaker process (`ip netns exec` execs it: the pid is the program's own)."""
        pid = self.processes[f"speaker-{node_name}"].pid
        assert pid is not None, "every program in `processes` was started"
        return pid

    def speaker_running(self, node_name: str) -> bool:
        proc = self.processes.get(f"speaker-{node_name}")
        return proc is not None and proc.alive()

    def signal_speaker(self, node_name: str, signum: int) -> None:
        """Send `signum` to the node's speaker (our own child, by pid), e.g. SIGSTOP / SIGCONT."""
        self.processes[f"speaker-{node_name}"].send_signal(signum)

    def stop_speaker(self, node_name: str, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the node's speaker (it leaves memberlist and withdraws) and wait; its exit status (KILLED when it
        had to be killed). restart_speaker starts it again."""
        return self.processes[f"speaker-{node_name}"].stop(timeout=timeout)

    def lan_port(self, node_name: str) -> str:
        """The switch port of the node's LAN 0 link: its veth peer, in the lab's bridge namespace."""
        index = self.lab.nodes.index(self.host(node_name))
        return f"n{index}l0"  # topology.Lab names bridge ports n<node>l<lan>

    def members_seen(self, node_name: str) -> set[str]:
        """The members the node's running speaker has logged as joined and not left since it last started (its JSON
        log, read incrementally)."""
        offset, live = self._member_views.get(node_name, (0, set()))
        path = self.log_dir / f"speaker-{node_name}.log"
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            for line in chunk[:complete].splitlines():
                with contextlib.suppress(ValueError):
                    entry = orjson.loads(line)
                    if entry.get("msg") == "speaker starting":
                        live = set()
                    elif entry.get("op") == "memberlist" and entry.get("event") in ("join", "leave"):
                        (live.add if entry["event"] == "join" else live.discard)(entry.get("node"))
            self._member_views[node_name] = (offset + complete, live)
        return set(live)

    def memberlist_formed(self) -> bool:
        """Every running speaker sees every other running speaker as a member (a stopped one may still be listed)."""
        running = {h.name for h in self.lab.nodes if self.speaker_running(h.name)}
        return bool(running) and all(self.members_seen(n) >= running - {n} for n in running)

    def node_macs(self) -> dict[str, str]:
        """node name -> the MAC of its LAN 0 interface (aa:bb:...)."""
        return {h.name: self.node_mac(h.name) for h in self.lab.nodes}

    def wait_steady_owner(self, probe: RunningProbe, span_s: float = 1.5, timeout: float = 90.0,
                          other_than: str | None = None, only: str | None = None, formed: bool = True) -> str | None:
        """Wait until memberlist has formed among the running speakers (when on, and `formed`: a partition keeps
        it from forming) and one node (not `other_than`; `only` that one, if given) alone answered the probe, UDP
        and ARP (its MAC only), for `span_s`: that node, or None after `timeout`."""
        macs = self.node_macs()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not formed or self.memberlist_timing is None or self.memberlist_formed():
                owner = steady_owner(probe.records(), time.monotonic(), span_s, macs)
                if owner is not None and owner != other_than and only in (None, owner):
                    return owner
            time.sleep(0.1)
        return None

    def announce(self, namespace: str, name: str, address: str) -> None:
        """A pool holding just `address`, an L2Advertisement for it, a LoadBalancer Service asking for it
        (metallb.io/loadBalancerIPs) and one ready Pod per node (every node has an endpoint)."""
        pool = f"{name}-pool"
        objects = [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": pool, "namespace": METALLB_NAMESPACE}, "spec": {"addresses": [f"{address}/32"]}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": pool, "namespace": METALLB_NAMESPACE}, "spec": {"ipAddressPools": [pool]}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": name, "namespace": namespace,
                          "annotations": {"metallb.io/loadBalancerIPs": address}},
             "spec": {"type": "LoadBalancer", "selector": {"app": name},
                      "ports": [{"port": 9, "protocol": "UDP"}]}},
        ]
        self.apply(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objects}).decode())
        self.add_ready_pods(namespace, name, {"app": name})

    def serve_echo(self, addresses: Sequence[str], port: int = ECHO_PORT) -> None:
        """On every node, accept UDP to `addresses` as kube-proxy would and answer with the node's name
        (`probe echo`). Each address becomes local through a route on lo, and arp_ignore=1 / arp_announce=2 keep
        the kernel from answering ARP for it or using it as an ARP sender: only the speaker's fast path answers."""
        for host in self.lab.nodes:
            with in_netns(host.netns):
                for key, value in ECHO_SYSCTLS.items():
                    Path("/proc/sys", key.replace(".", "/")).write_text(value)
            for address in addresses:
                self.lab.run(host.netns, ["ip", "route", "replace", "local", f"{address}/32", "dev", "lo",
                                          "table", "local"])
            argv = [*PROBE_MODULE, "echo", "--node", host.name, "--port", str(port)]
            for address in addresses:
                argv += ["--address", address]
            proc = self.lab.popen(host.netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._stack.callback(terminate, proc)
            wait_ready(proc, f"the UDP echo on {host.name}")

    def start_probe(self, address: str, out: Path, port: int = ECHO_PORT,
                    interval: float = PROBE_INTERVAL_S) -> RunningProbe:
        """The failover probe (`probe probe`) in the client namespace, writing to `out`; stopped at teardown."""
        client = self.lab.clients[0]
        network = client.endpoint("eth0").ipv4.network
        argv = [*PROBE_MODULE, "probe", "--address", address, "--port", str(port), "--interval", str(interval),
                "--sampler-ip", str(network.network_address + SAMPLER_HOST), "--out", str(out)]
        proc = self.lab.popen(client.netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stack.callback(terminate, proc)
        wait_ready(proc, "the failover probe")
        return RunningProbe(proc, ProbeLog(out, interval))


def delete_pods_now(kube: KubeEnv, namespace: str, selector: str | None = None, timeout: float = 30.0) -> None:
    """Force-delete Pods (grace period 0) and wait until they are gone. The lab's Pods sit on Nodes no kubelet
    runs, so a plain delete leaves them Terminating until the Pod GC notices the Node is gone, and a new lab that
    creates the same names meanwhile gets 409 AlreadyExists."""
    which = ["-l", selector] if selector else ["--all"]
    kube.kubectl("delete", "pods", "-n", namespace, *which, "--grace-period=0", "--force", "--wait=false",
                 check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = kube.kubectl("get", "pods", "-n", namespace, *(["-l", selector] if selector else []), "-o", "name",
                              check=False)
        if listed.returncode == 0 and not listed.stdout.strip():
            return
        time.sleep(0.2)
    raise TimeoutError(f"pods in {namespace} ({selector or 'all'}) still listed after {timeout:.0f} s")


ECHO_SYSCTLS = {"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2"}
PROBE_MODULE = [sys.executable, "-m", "metallb_fast.lab.probe"]


@dataclass
class RunningProbe:
    proc: subprocess.Popen[str]
    log: ProbeLog

    def records(self) -> ProbeRecords:
        return self.log.poll()

    def stop(self) -> ProbeRecords:
        terminate(self.proc)
        return self.log.poll()


@contextlib.contextmanager
def started_kube() -> Iterator[KubeEnv]:
    """A fresh API server with our CRDs and kube-controller-manager (for EndpointSlices), stopped at exit."""
    env = KubeEnv().start()
    try:
        env.apply_crds(CRD_DIR)
        env.apply_deploy_rbac(DEPLOY_DIR)
        env.start_controller_manager()
        yield env
    finally:
        env.stop()
