"""Control-plane benchmark, Kubernetes part: the real programs against a real kube-apiserver (called by
control_plane.py; see bench/README.md).

1. status latency: the controller (a subprocess) running, N LoadBalancer Services POSTed by a few threads; per
   Service, the time from the POST's return to a watch event carrying status.loadBalancer.ingress;
2. fast-path answer: one speaker (--backend xdp, else ring) in a lab node; for each sample Service, the time from
   its POST's return to the first ARP reply the client namespace receives for its address;
3. initial sync: the controller restarted over M assigned Services; time from process start until its
   metallb_k8s_client_updates_total covers every Service and stops growing; no Service may be written;
4. resident memory (VmRSS / VmHWM) of the controller and the speaker with M Services.

Bulk Services are IPv6 single-stack without a selector, from a 2001:db8: pool: the lab's documentation ranges hold
too few IPv4 addresses for thousands, and without endpoints no speaker announces them (no packets). They do not
allocate node ports (the 1.20 range would run out). The ARP samples are IPv4 with a ready Pod on the lab node.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import os
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import urllib3

from metallb_fast.dataplane.netns import in_netns
from metallb_fast.dataplane.packets import ETHERTYPE_ARP, arp_request, format_mac
from metallb_fast.k8s.client import ApiError, Json, KubeClient, iter_json_lines
from metallb_fast.lab import Lab
from metallb_fast.lab.loopback_proxy import LoopbackProxy
from metallb_fast.lab.processes import ManagedProcess
from metallb_fast.testing.kubeenv import KubeEnv, free_port

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "deploy" / "crds"
METALLB_FAST = [sys.executable, "-m", "metallb_fast.cli"]
NAMESPACE = "bench"
BULK_POOL = "2001:db8:ff00::/112"  # documentation range, outside the lab's LANs
ARP_APP = "arp-sample"
UPDATES_METRIC = "metallb_k8s_client_updates_total"


@dataclass(frozen=True)
class Plan:
    status_services: int = 1000  # part 1
    total_services: int = 5000  # parts 3 and 4 (part 1's Services included)
    arp_samples: int = 50  # part 2
    create_threads: int = 4  # concurrent POSTs: the API server shares 2 cores with everything else
    arp_interval_s: float = 0.005
    arp_timeout_s: float = 15.0
    wait_timeout_s: float = 240.0


QUICK = Plan(status_services=100, total_services=500, arp_samples=10)


# ---------------------------------------------------------------------------------------------- small helpers


def summary(values_s: Sequence[float]) -> dict[str, float]:
    """Milliseconds: median, p99 (nearest rank), max, min, mean."""
    ms = sorted(v * 1e3 for v in values_s)
    if not ms:
        return {}
    rank = max(0, min(len(ms) - 1, round(0.99 * len(ms) + 0.5) - 1))
    return {"n": len(ms), "median_ms": statistics.median(ms), "p99_ms": ms[rank], "max_ms": ms[-1],
            "min_ms": ms[0], "mean_ms": statistics.fmean(ms)}


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the RSS split (anonymous = heap; file = mapped libraries, e.g. bcc's LLVM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingress_of(obj: Json) -> list[str]:
    return [i.get("ip", "") for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def bulk_service(name: str) -> Json:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack",
                 "allocateLoadBalancerNodePorts": False, "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def arp_service(name: str, address: IPv4Address) -> Json:
    """Asks for `address` (metallb.io/loadBalancerIPs) so the client can probe it before the Service exists."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {"metallb.io/loadBalancerIPs": str(address)}},
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "allocateLoadBalancerNodePorts": False, "selector": {"app": ARP_APP},
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def config_objects(lan_first: IPv4Address, lan_last: IPv4Address) -> list[tuple[str, Json]]:
    base = "/apis/metallb.io/v1beta1/namespaces/metallb-system"
    return [
        (f"{base}/ipaddresspools", {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                                    "metadata": {"name": "bulk"}, "spec": {"addresses": [BULK_POOL]}}),
        (f"{base}/ipaddresspools", {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                                    "metadata": {"name": "lan"}, "spec": {"addresses": [f"{lan_first}-{lan_last}"]}}),
        # every pool: the speaker evaluates every Service, as it would in a real cluster
        (f"{base}/l2advertisements", {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                                      "metadata": {"name": "all"}, "spec": {}}),
    ]


def create_services(client: KubeClient, bodies: Sequence[Json], threads: int) -> dict[str, tuple[float, float]]:
    """POST every body with `threads` workers; name -> (monotonic before the POST, monotonic at its return)."""

    def post(body: Json) -> tuple[str, tuple[float, float]]:
        start = time.monotonic()
        client.create(f"/api/v1/namespaces/{NAMESPACE}/services", body)
        return body["metadata"]["name"], (start, time.monotonic())

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(pool.map(post, bodies))


def list_services(client: KubeClient) -> dict[str, tuple[str, tuple[str, ...]]]:
    """namespace/name -> (resourceVersion, ingress) for every Service in the cluster."""
    items = client.get("/api/v1/services")["items"]
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}":
            (s["metadata"]["resourceVersion"], tuple(ingress_of(s))) for s in items}


# ---------------------------------------------------------------------------------------------- the watcher process


def watch_ingress(kubeconfig: str, resource_version: str, prefix: str, expected: int, timeout: float,
                  conn: multiprocessing.connection.Connection) -> None:
    """(Child process, so its timestamps do not wait for the POST threads' GIL.) Watch Services in NAMESPACE from
    `resource_version`; send "ready" once the stream is open, then {name: (monotonic, ips)} of the first event
    showing an ingress for each name starting with `prefix`, once `expected` names have one or at `timeout`."""
    client = KubeClient.from_kubeconfig(kubeconfig)
    seen: dict[str, tuple[float, list[str]]] = {}
    deadline = time.monotonic() + timeout
    ready_sent = False
    rv = resource_version
    path = f"/api/v1/namespaces/{NAMESPACE}/services"
    while len(seen) < expected and time.monotonic() < deadline and not conn.poll():
        query = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": int(timeout) + 10}
        try:
            response = client.open("GET", path, query=query, timeout=(5.0, 2.0))
        except (ApiError, OSError, urllib3.exceptions.HTTPError):
            time.sleep(0.2)
            continue
        if not ready_sent:
            conn.send("ready")
            ready_sent = True
        try:
            for event in iter_json_lines(response):
                now = time.monotonic()
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                rv = meta.get("resourceVersion") or rv
                name = meta.get("name", "")
                if name.startswith(prefix) and name not in seen and (ips := ingress_of(obj)):
                    seen[name] = (now, ips)
                if len(seen) >= expected or now > deadline or conn.poll():
                    break
        except (OSError, urllib3.exceptions.HTTPError):
            pass  # read timeout (a quiet stream) or a dropped connection: watch again from the last version
        finally:
            response.release_conn()
    conn.send(seen)
    client.close()


class Watcher:
    """A watch_ingress child process; started before the POSTs, joined after."""

    def __init__(self, kube: KubeEnv, client: KubeClient, prefix: str, expected: int, timeout: float) -> None:
        rv = client.get(f"/api/v1/namespaces/{NAMESPACE}/services", limit=1)["metadata"]["resourceVersion"]
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=watch_ingress, args=(str(kube.kubeconfig_path("admin")), rv, prefix, expected, timeout, child),
            daemon=True)
        self.process.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            self.process.kill()
            raise RuntimeError("the watcher process did not open its watch within 60 s")
        self.timeout = timeout

    def result(self) -> dict[str, tuple[float, list[str]]]:
        if not self._conn.poll(self.timeout + 30):
            self.process.kill()
            self.process.join()
            raise RuntimeError("the watcher process gave no result")
        seen: dict[str, tuple[float, list[str]]] = self._conn.recv()
        self.process.join(10)
        return seen

    def stop(self) -> dict[str, tuple[float, list[str]]]:
        self._conn.send("stop")
        return self.result()


# ---------------------------------------------------------------------------------------------- program processes


class Program(ManagedProcess):
    """`metallb-fast controller|speaker` as a child process (in a lab namespace when `lab` is given), started at
    once."""

    def __init__(self, name: str, argv: Sequence[str], logdir: Path, lab: Lab | None = None,
                 netns: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        launch = functools.partial(lab.popen, netns) if lab is not None and netns is not None else subprocess.Popen
        super().__init__(name, argv, logdir / f"{name}.log", launch=launch, env=env, cwd=cwd)
        self.started = time.monotonic()
        self.start()

    @property
    def pid(self) -> int:
        pid = super().pid
        assert pid is not None, "started in __init__"
        return pid

    def memory(self) -> dict[str, int]:
        # `ip netns exec` execs the command in place, so the pid is the Python process itself: check it is ours
        cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        if b"metallb_fast.cli" not in cmdline:
            raise RuntimeError(f"{self.name}: pid {self.pid} is not the program ({cmdline[:80]!r})")
        return memory_of(self.pid)

    def stop(self, timeout: float = 20.0, kill: bool = False) -> int | None:
        return super().stop(timeout, kill)


def controller_argv(kube: KubeEnv, metrics_port: int = 0) -> list[str]:
    """The controller under the deploy/ ServiceAccount's token and roles (what an operator deploys is measured)."""
    return [*METALLB_FAST, "controller", "--kubeconfig", str(kube.kubeconfig_path("controller")),
            "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1", "--log-level", "error"]


def read_counter(port: int, metric: str = UPDATES_METRIC) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return None
    match = re.search(rf"^{metric} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------- ARP from the client


class ArpProbe:
    """An AF_PACKET socket on the client's eth0 (opened inside its namespace)."""

    def __init__(self, lab: Lab) -> None:
        client = lab.clients[0]
        self.mac = client.mac("eth0")
        self.ip = IPv4Address(client.ipv4("eth0"))
        with in_netns(client.netns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_ARP))
        self.sock.bind(("eth0", ETHERTYPE_ARP))
        self.sock.setblocking(False)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(2048)

    def until_answered(self, target: IPv4Address, interval: float, timeout: float) -> dict[str, Any]:
        """Send a who-has every `interval` until a reply to us arrives; times are monotonic."""
        request = arp_request(self.mac, self.ip, target)
        wanted = target.packed
        first_any: float | None = None
        sent = 0
        deadline = time.monotonic() + timeout
        next_send = time.monotonic()
        while (now := time.monotonic()) < deadline:
            if now >= next_send:
                self.sock.send(request)
                sent += 1
                next_send = now + interval
            ready, _, _ = select.select([self.sock], [], [], max(0.0, min(next_send, deadline) - now))
            if not ready:
                continue
            with contextlib.suppress(BlockingIOError):
                while True:
                    frame = self.sock.recv(2048)
                    seen_at = time.monotonic()
                    if len(frame) < 42 or struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_ARP:
                        continue
                    op = struct.unpack_from("!H", frame, 20)[0]
                    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
                    if spa != wanted or sha == self.mac:
                        continue
                    if first_any is None:
                        first_any = seen_at  # gratuitous or a reply, whichever comes first
                    if op == 2 and tha == self.mac and tpa == self.ip.packed:
                        return {"answered_at": seen_at, "first_any_at": first_any, "mac": format_mac(sha),
                                "requests_sent": sent}
        return {"answered_at": None, "first_any_at": first_any, "mac": None, "requests_sent": sent}

    def close(self) -> None:
        self.sock.close()


def xdp_mode(lab: Lab, netns: str) -> str:
    """What `ip -d link` shows attached to eth0 in `netns`: xdp (native), xdpgeneric, or none."""
    out = lab.run(netns, ["ip", "-d", "link", "show", "eth0"], check=False).stdout
    match = re.search(r"\b(xdpgeneric|xdpdrv|xdpoffload|xdpmulti|xdp)\b", out)
    return match.group(1) if match else "none"


# ---------------------------------------------------------------------------------------------- the run


def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All four parts in one environment; everything started is stopped (by pid) on the way out."""
    if os.geteuid() != 0:
        raise PermissionError("the Kubernetes part needs root (network namespaces, XDP); use --skip-k8s")
    result: dict[str, Any] = {"plan": asdict(plan), "phases_s": {}}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        logdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbf-bench-cp-")))
        programs: list[Program] = []

        watched: dict[str, int | None] = {}  # processes whose CPU time each phase records

        def phase(name: str) -> contextlib.AbstractContextManager[None]:
            return _phase(result, name, log, watched)

        with phase("setup"):
            kube = KubeEnv().start()
            stack.callback(kube.stop)
            # registered after the API server, so unwound before it: the programs stop while it still answers
            stack.callback(lambda: [p.stop() for p in programs])
            kube.apply_crds(CRDS)
            kube.apply_deploy_rbac(ROOT / "deploy")
            kube.start_controller_manager()
            kube_pids = [p for p in (kube.apiserver.pid, kube.etcd.pid, kube.controller_manager.pid) if p]
            watched.update({"kube-apiserver": kube.apiserver.pid, "etcd": kube.etcd.pid,
                            "kube-controller-manager": kube.controller_manager.pid})
            client = KubeClient.from_kubeconfig(str(kube.kubeconfig_path("admin")))
            stack.callback(client.close)
            client.create("/api/v1/namespaces",
                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            lab = stack.enter_context(Lab(nodes=1, clients=1))
            node = lab.nodes[0]
            kube.create_node(node.name, internal_ip=str(node.ipv4("eth0")))
            stack.enter_context(LoopbackProxy([node.netns], port=kube.port, target_port=kube.port))
            lan_first = lab.vip_v4(0)
            lan_last = lab.vip_v4(plan.arp_samples)  # one spare: the warm-up Service
            for path, body in config_objects(lan_first, lan_last):
                client.create(path, body)
            controller = Program("controller-1", controller_argv(kube), logdir)
            programs.append(controller)
            watched["controller"] = controller.pid

        # 1. creation -> status
        with phase("status_latency"):
            names = [f"lat-{i:05d}" for i in range(plan.status_services)]
            watcher = Watcher(kube, client, "lat-", len(names), plan.wait_timeout_s)
            posted = create_services(client, [bulk_service(n) for n in names], plan.create_threads)
            seen = watcher.result()
            result["status_latency"] = status_latency(posted, seen)
            log(f"  status: {result['status_latency']['latency']}")

        with phase("fill"):
            names = [f"bulk-{i:05d}" for i in range(plan.status_services, plan.total_services)]
            watcher = Watcher(kube, client, "bulk-", len(names), plan.wait_timeout_s)
            posted = create_services(client, [bulk_service(n) for n in names], plan.create_threads)
            seen = watcher.result()
            fill = status_latency(posted, seen)
            result["fill"] = {k: fill[k] for k in ("services", "assigned", "throughput_per_s", "wall_s")}
            if fill["assigned"] != len(names):
                raise RuntimeError(f"fill: {fill['assigned']}/{len(names)} Services got an address")
            # the first controller, after assigning every Service
            controller_mem_first = controller.memory()

        # 3. restart -> initial sync
        with phase("initial_sync"):
            before = list_services(client)
            events_before = len(client.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"])
            controller.stop()
            port = free_port()
            restarted = Program("controller-2", controller_argv(kube, port), logdir)
            programs.append(restarted)
            watched["controller"] = restarted.pid
            result["initial_sync"] = initial_sync(restarted, port, len(before), plan.wait_timeout_s)
            after = list_services(client)
            result["initial_sync"].update(compare(before, after))
            result["initial_sync"]["new_events"] = (
                len(client.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"]) - events_before)
            controller_mem_sync = restarted.memory()
            log(f"  initial sync: {result['initial_sync']}")

        # 2. creation -> ARP answer
        with phase("arp_answer"):
            kube.create_ready_pod(NAMESPACE, "arp-backend", node.name, {"app": ARP_APP}, ["198.51.100.10"])
            speaker, backend = start_speaker(kube, lab, node.name, logdir, programs)
            watched["speaker"] = speaker.pid
            probe = ArpProbe(lab)
            stack.callback(probe.close)
            result["arp_answer"] = arp_answers(client, kube, lab, probe, plan, speaker)
            result["arp_answer"]["backend"] = backend
            result["arp_answer"]["xdp_attached"] = xdp_mode(lab, node.netns)
            log(f"  arp: {result['arp_answer']['answer']}")

        # 4. memory
        result["memory_kib"] = {
            "controller_after_assigning": controller_mem_first,
            "controller_restarted_after_sync": controller_mem_sync,
            "controller_restarted_end": restarted.memory(),
            "speaker_end": speaker.memory(),
            "services": len(list_services(client)),
            "speaker_announcing": result["arp_answer"]["announced"],
        }

        with phase("teardown_programs"):
            codes = {p.name: p.stop() for p in programs}
            result["exit_codes"] = codes
        pids = [p.pid for p in programs]
        prefix = lab.prefix
    # the ExitStack has stopped the programs, the proxy, the lab and the API server: check
    result["cleanup"] = {
        "programs_alive": [pid for pid in pids if _alive(pid)],
        "kube_alive": [pid for pid in kube_pids if _alive(pid)],
        "lab_namespaces_left": [n for n in _netns_names() if n.startswith(prefix)],
    }
    result["total_s"] = time.monotonic() - started
    return result


@contextlib.contextmanager
def _phase(result: dict[str, Any], name: str, log: Callable[[str], None], watched: dict[str, int | None]
           ) -> Iterator[None]:
    """Wall time of the phase, and the CPU seconds each watched process spent in it (who was busy: the programs
    or the API server)."""
    log(f"[{name}]")
    start = time.monotonic()
    cpu = {who: cpu_seconds(pid) for who, pid in watched.items()}
    yield
    result["phases_s"][name] = round(time.monotonic() - start, 2)
    result.setdefault("phase_cpu_s", {})[name] = {
        who: round(cpu_seconds(pid) - cpu.get(who, 0.0), 2) for who, pid in watched.items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _netns_names() -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return os.listdir("/run/netns")
    return []


def status_latency(posted: dict[str, tuple[float, float]], seen: dict[str, tuple[float, list[str]]]) -> dict[str, Any]:
    latencies = [seen[n][0] - posted[n][1] for n in posted if n in seen]
    first_post = min(start for start, _ in posted.values())
    last_status = max((t for t, _ in seen.values()), default=first_post)
    last_post = max(end for _, end in posted.values())
    return {
        "services": len(posted),
        "assigned": sum(1 for n in posted if n in seen),
        "latency": summary(latencies),
        "post": summary([end - start for start, end in posted.values()]),
        "create_rate_per_s": len(posted) / (last_post - first_post),
        "throughput_per_s": len(seen) / (last_status - first_post),
        "wall_s": last_status - first_post,
        "negative": sum(1 for v in latencies if v < 0),  # status seen before our POST returned (GIL, scheduling)
    }


def initial_sync(program: Program, port: int, services: int, timeout: float) -> dict[str, Any]:
    """Poll the updates counter every 50 ms until it covers `services` and holds still for 3 s."""
    start = program.started
    metrics_up = first_update = None
    value, reached_at = 0.0, None
    deadline = start + timeout
    while time.monotonic() < deadline:
        if not program.alive():
            raise RuntimeError(f"{program.name} exited ({program.returncode}):\n{program.tail()}")
        current = read_counter(port)
        now = time.monotonic()
        if current is not None:
            metrics_up = metrics_up or now
            if current > 0 and first_update is None:
                first_update = now
            if current != value:
                value, reached_at = current, now
            if value >= services and reached_at is not None and now - reached_at >= 3.0:
                break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"{program.name}: updates counter {value} < {services} services after {timeout:.0f} s")
    assert reached_at is not None and metrics_up is not None and first_update is not None
    return {
        "services": services,
        "processed": value,
        "seconds_to_all_processed": reached_at - start,
        "seconds_to_metrics_up": metrics_up - start,
        "seconds_to_first_processed": first_update - start,
        "update_errors": read_counter(port, "metallb_k8s_client_update_errors_total"),
    }


def compare(before: dict[str, tuple[str, tuple[str, ...]]], after: dict[str, tuple[str, tuple[str, ...]]]
            ) -> dict[str, Any]:
    changed_ip = [k for k in before if after.get(k, ("", ()))[1] != before[k][1]]
    written = [k for k in before if after.get(k, ("", ()))[0] != before[k][0]]
    return {"changed_addresses": len(changed_ip), "written_services": len(written),
            "unassigned": sum(1 for k, (_, ips) in before.items() if not ips and k.startswith(NAMESPACE + "/")),
            "examples_changed": (changed_ip + written)[:5]}


def start_speaker(kube: KubeEnv, lab: Lab, node: str, logdir: Path, programs: list[Program]
                  ) -> tuple[Program, str]:
    """--backend xdp; ring when xdp cannot load (the speaker exits at startup: it says why in its log)."""
    for backend in ("xdp", "ring"):
        argv = [*METALLB_FAST, "speaker", "--kubeconfig", str(kube.kubeconfig_path("speaker")), "--metrics-port", "0",
                "--log-level", "error", "--node-name", node, "--backend", backend]
        speaker = Program(f"speaker-{backend}", argv, logdir, lab, lab.nodes[0].netns)
        programs.append(speaker)
        # bcc compiles and attaches in ~1-2 s; a backend that cannot load makes the program exit before that ends
        with contextlib.suppress(subprocess.TimeoutExpired):
            speaker.wait(8)
        if speaker.alive():
            return speaker, backend
        print(f"  speaker --backend {backend} exited ({speaker.returncode}):\n{speaker.tail()}", file=sys.stderr)
    raise RuntimeError("the speaker started with neither the xdp nor the ring backend")


def arp_answers(client: KubeClient, kube: KubeEnv, lab: Lab, probe: ArpProbe, plan: Plan, speaker: Program
                ) -> dict[str, Any]:
    """A warm-up Service first (the speaker's initial sync and the program attach are not what is measured),
    then one sample at a time: POST, then probe every interval until the reply."""
    node_mac = format_mac(lab.nodes[0].mac("eth0"))
    warm_ip = lab.vip_v4(plan.arp_samples)
    client.create(f"/api/v1/namespaces/{NAMESPACE}/services", arp_service("arp-warmup", warm_ip))
    warm_start = time.monotonic()
    warm = probe.until_answered(warm_ip, 0.05, plan.wait_timeout_s)
    if warm["answered_at"] is None:
        raise RuntimeError(f"the warm-up Service {warm_ip} was never answered; speaker log:\n{speaker.tail()}")
    names = [f"arp-{i:03d}" for i in range(plan.arp_samples)]
    watcher = Watcher(kube, client, "arp-0", len(names), plan.wait_timeout_s)
    rows = []
    for i, name in enumerate(names):
        address = lab.vip_v4(i)
        probe.drain()
        time.sleep(0.2)  # let the previous sample's follow-up work (status, events) settle
        client.create(f"/api/v1/namespaces/{NAMESPACE}/services", arp_service(name, address))
        posted = time.monotonic()
        outcome = probe.until_answered(address, plan.arp_interval_s, plan.arp_timeout_s)
        rows.append({"name": name, "address": str(address), "posted": posted, **outcome})
        if not speaker.alive():
            raise RuntimeError(f"the speaker exited:\n{speaker.tail()}")
    seen = watcher.result()
    answered = [r for r in rows if r["answered_at"] is not None]
    return {
        "samples": len(rows),
        "answered": len(answered),
        "announced": len(answered) + 1,
        "wrong_mac": sum(1 for r in answered if r["mac"] != node_mac),
        "answer": summary([r["answered_at"] - r["posted"] for r in answered]),
        "first_arp_any": summary([r["first_any_at"] - r["posted"] for r in rows if r["first_any_at"]]),
        "status": summary([seen[r["name"]][0] - r["posted"] for r in rows if r["name"] in seen]),
        "status_to_answer": summary([r["answered_at"] - seen[r["name"]][0] for r in answered if r["name"] in seen]),
        "warmup_s": warm["answered_at"] - warm_start,
        "probe_interval_ms": plan.arp_interval_s * 1e3,
    }
