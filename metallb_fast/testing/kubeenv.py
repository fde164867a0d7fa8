"""A private Kubernetes control plane for tests, the lab and benchmarks: etcd + kube-apiserver (+ optionally
kube-controller-manager) on free loopback ports, with TLS, static tokens and RBAC.

The binaries come from scripts/install-kube.sh (a build of Debian's `kubernetes` source package, 1.20) and Debian's
etcd-server. Everything lives in one work dir under metallb-fast-kube/; every process we start names that
dir on its command line, which is how a later run recognises (and kills, by pid) the leftovers of a crashed one.
(The work dir is on /dev/shm when that has room: see _work_root.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from metallb_fast.lab.processes import ManagedProcess

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

CACHE_BIN = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "metallb-fast" / "kube" / "bin"


def _work_root() -> Path:
    """Where work dirs go: tmpfs when there is room (etcd fsyncs every write; on a busy disk that dominates the
    benchmarks), else the temp dir. METALLB_FAST_KUBE_WORKDIR overrides."""
    override = os.environ.get("METALLB_FAST_KUBE_WORKDIR")
    if override:
        return Path(override)
    with contextlib.suppress(OSError):
        shm = os.statvfs("/dev/shm")
        if shm.f_bavail * shm.f_frsize > 2 << 30 and os.access("/dev/shm", os.W_OK):
            return Path("/dev/shm/metallb-fast-kube")
    return Path(tempfile.gettempdir()) / "metallb-fast-kube"


WORK_ROOT = _work_root()

# What MetalLB needs from a 1.20 server (ENVIRONMENT.md): dual-stack Services, mixed-protocol LoadBalancers, and
# EndpointSlices carrying nodeName and the terminating condition.
FEATURE_GATES = ",".join((
    "IPv6DualStack=true",
    "MixedProtocolLBService=true",
    "ServiceLBNodePortControl=true",
    "EndpointSliceNodeName=true",
    "EndpointSliceTerminatingCondition=true",
))
SERVICE_CIDRS = "10.96.0.0/16,fd00:10:96::/112"

# Only the controllers that turn Nodes/Pods/Services into Endpoints and EndpointSlices, and the two that clean up
# (namespace deletion, owner references). Notably not nodelifecycle: there is no kubelet, and it would mark the
# tests' Nodes NotReady after its grace period.
CONTROLLERS = "endpoint,endpointslice,endpointslicemirroring,garbagecollector,namespace"

# Identities beyond the admin: the service accounts deploy/ binds roles to. A static token whose user name is a
# service account's is subject to that account's RoleBindings, so tests can run with exactly deploy/'s RBAC.
SERVICE_ACCOUNTS = ("metallb-system:controller", "metallb-system:speaker")


class KubeEnvError(RuntimeError):
    """The control plane did not come up (or a kubectl call failed); the message carries the log tail."""


@dataclass(frozen=True)
class KubeBinaries:
    apiserver: Path
    controller_manager: Path
    kubectl: Path
    etcd: Path
    openssl: Path

    @classmethod
    def find(cls, bin_dir: Path | None = None) -> KubeBinaries:
        """Paths where the binaries are expected; `missing()` says which are not there."""
        bin_dir = bin_dir or Path(os.environ.get("METALLB_FAST_KUBE_BIN", str(CACHE_BIN)))
        return cls(
            apiserver=bin_dir / "kube-apiserver",
            controller_manager=bin_dir / "kube-controller-manager",
            kubectl=bin_dir / "kubectl",
            etcd=Path(shutil.which("etcd") or "/usr/bin/etcd"),
            openssl=Path(shutil.which("openssl") or "/usr/bin/openssl"),
        )

    def missing(self) -> list[str]:
        return [str(p) for p in (self.apiserver, self.controller_manager, self.kubectl, self.etcd, self.openssl)
                if not os.access(p, os.X_OK)]


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now at `address`."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


# ---- processes ----------------------------------------------------------------------------------------------------


def _managed(name: str, argv: Sequence[str], workdir: Path) -> ManagedProcess:
    """A control-plane process logging to the work dir, its pid recorded there for remove_stale_workdirs."""
    return ManagedProcess(name, argv, workdir / f"{name}.log", pids_file=workdir / "pids")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_workdirs(root: Path = WORK_ROOT) -> list[Path]:
    """Clean up after runs that died without tearing down: their owner (the pid in the dir's name) is gone.

    A leftover process is killed only if its command line still names the stale dir, so a reused pid is safe."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for workdir in root.glob("run-*"):
        try:
            owner = int(workdir.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        pids_file = workdir / "pids"
        pids = pids_file.read_text().split() if pids_file.exists() else []
        for text in pids:
            pid = int(text)
            if str(workdir) in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(workdir)
    return removed


# ---- certificates and credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path


def make_pki(openssl: Path, directory: Path, address: str = "127.0.0.1") -> Pki:
    """A throwaway CA, a serving cert for `address` and localhost, and the service-account signing key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.crt", directory / "apiserver.crt", directory / "apiserver.key",
              directory / "sa.pub", directory / "sa.key")
    ca_key = directory / "ca.key"
    csr = directory / "apiserver.csr"
    ext = directory / "apiserver.ext"
    sans = sorted({"IP:127.0.0.1", f"IP:{address}", "DNS:localhost", "IP:10.96.0.1", "DNS:kubernetes.default.svc"})
    ext.write_text(f"subjectAltName={','.join(sans)}\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        result = subprocess.run([str(openssl), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise KubeEnvError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(pki.ca_cert), "-days", "30",
        "-subj", "/CN=metallb-fast-test-ca")
    run("req", "-new", *ec, "-keyout", str(pki.serving_key), "-out", str(csr), "-subj", "/CN=kube-apiserver")
    run("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(pki.serving_cert), "-days", "30", "-extfile", str(ext))
    run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki.sa_private))
    run("pkey", "-in", str(pki.sa_private), "-pubout", "-out", str(pki.sa_public))
    return pki


@dataclass(frozen=True)
class Identity:
    name: str
    token: str
    groups: tuple[str, ...]


def identities() -> dict[str, Identity]:
    """admin (system:masters) plus one identity per service account in SERVICE_ACCOUNTS, keyed by short name."""
    out = {"admin": Identity("admin", secrets.token_hex(16), ("system:masters",))}
    for account in SERVICE_ACCOUNTS:
        namespace, name = account.split(":")
        out[name] = Identity(f"system:serviceaccount:{namespace}:{name}", secrets.token_hex(16),
                             ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))
    return out


def token_file(users: Iterable[Identity]) -> str:
    lines = []
    for i, user in enumerate(users):
        groups = ",".join(user.groups)
        lines.append(f'{user.token},{user.name},uid-{i},"{groups}"')
    return "\n".join(lines) + "\n"


def kubeconfig(server: str, ca_cert: Path, user: Identity) -> str:
    """A kubeconfig (JSON is YAML) for one identity."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": user.name, "user": {"token": user.token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user.name}}],
        "current-context": "test",
    }, indent=1)


# ---- the environment ----------------------------------------------------------------------------------------------


class KubeEnv:
    """etcd + kube-apiserver (+ kube-controller-manager on demand). Use as a context manager or start()/stop()."""

    def __init__(self, binaries: KubeBinaries | None = None, ready_timeout: float = 60.0,
                 address: str = "127.0.0.1") -> None:
        """`address`: where the API server listens (loopback unless a lab needs it reachable from a network
        namespace, e.g. on a documentation-range address of a veth in the root namespace)."""
        self.binaries = binaries or KubeBinaries.find()
        missing = self.binaries.missing()
        if missing:
            raise KubeEnvError(f"missing binaries: {', '.join(missing)} (run scripts/install-kube.sh)")
        self.ready_timeout = ready_timeout
        WORK_ROOT.mkdir(parents=True, exist_ok=True)
        remove_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=WORK_ROOT))
        self.address = address
        self.port = free_port(address)
        host = f"[{address}]" if ":" in address else address
        self.server = f"https://{host}:{self.port}"
        self.users = identities()
        self.pki = make_pki(self.binaries.openssl, self.workdir / "pki", address)
        (self.workdir / "tokens.csv").write_text(token_file(self.users.values()))
        for short, user in self.users.items():
            self.kubeconfig_path(short).write_text(kubeconfig(self.server, self.pki.ca_cert, user))
        etcd_port, peer_port = free_port(), free_port()
        self.etcd = _managed("etcd", self._etcd_argv(etcd_port, peer_port), self.workdir)
        self.apiserver = _managed("kube-apiserver", self._apiserver_argv(etcd_port), self.workdir)
        self.controller_manager = _managed("kube-controller-manager", self._kcm_argv(), self.workdir)

    # -- argv --

    def _etcd_argv(self, port: int, peer_port: int) -> list[str]:
        client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
        return [str(self.binaries.etcd), "--name", "test", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"test={peer}", "--log-level", "warn", "--logger", "zap"]

    def _apiserver_argv(self, etcd_port: int) -> list[str]:
        pki = self.pki
        return [
            str(self.binaries.apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={self.address}", f"--advertise-address={self.address}", f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--disable-admission-plugins=ServiceAccount",
            f"--feature-gates={FEATURE_GATES}",
            f"--service-cluster-ip-range={SERVICE_CIDRS}",
            "--allow-privileged=true",
            # The apiserver would publish its address as the `kubernetes` Service's endpoint, which Endpoints
            # validation rejects when it is loopback: keep it from trying.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "-v=1",
        ]

    def _kcm_argv(self) -> list[str]:
        return [
            str(self.binaries.controller_manager),
            f"--kubeconfig={self.kubeconfig_path('admin')}",
            f"--controllers={CONTROLLERS}",
            "--leader-elect=false", "--port=0", "--secure-port=0",
            "--use-service-account-credentials=false",
            f"--feature-gates={FEATURE_GATES}",
            "-v=1",
        ]

    # -- lifecycle --

    def kubeconfig_path(self, user: str = "admin") -> Path:
        """Kubeconfig of `user`: "admin", or a service account's short name ("controller", "speaker")."""
        return self.workdir / f"kubeconfig-{user}"

    @property
    def admin_token(self) -> str:
        return self.users["admin"].token

    def start(self) -> KubeEnv:
        try:
            self.etcd.start()
            self.start_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything we started (by pid) and remove the work dir."""
        for proc in (self.controller_manager, self.apiserver, self.etcd):
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeEnv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_apiserver(self) -> None:
        """Start (or start again, on the same port, over the same etcd data) and wait until /readyz says ok."""
        self.apiserver.start()
        self.wait_ready()

    def stop_apiserver(self, kill: bool = False) -> None:
        """Stop the API server: gracefully (watches end cleanly), or with `kill` as in a crash (connections
        drop mid-stream). etcd keeps running, so a later start_apiserver() finds every object."""
        self.apiserver.stop(kill=kill)

    def restart_apiserver(self, down_for: float = 0.0, kill: bool = False) -> None:
        """Stop the API server, stay down `down_for` seconds (clients see refused connections), start it again."""
        self.stop_apiserver(kill=kill)
        if down_for > 0:
            time.sleep(down_for)
        self.start_apiserver()

    def start_controller_manager(self) -> None:
        self.controller_manager.start()
        time.sleep(0.2)
        if not self.controller_manager.alive():
            raise KubeEnvError(f"kube-controller-manager exited:\n{self.controller_manager.tail()}")

    def stop_controller_manager(self) -> None:
        self.controller_manager.stop()

    def wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        request = urllib.request.Request(f"{self.server}/readyz",
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in (self.etcd, self.apiserver):
                if not proc.alive():
                    raise KubeEnvError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except (OSError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(0.1)
        raise KubeEnvError(f"kube-apiserver not ready after {self.ready_timeout:.0f}s ({last}):\n"
                           f"{self.apiserver.tail()}")

    # -- clients --

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, user: str = "admin",
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run our kubectl (1.20, matching the server) as `user`; raises KubeEnvError on failure when `check`."""
        argv = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig_path(user)}",
                f"--cache-dir={self.workdir / 'kubectl-cache'}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubeEnvError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def api_client(self, user: str = "admin") -> ApiClient:
        """A kubernetes-client ApiClient for `user`; each call makes a new one (close it when done)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig_path(user)))

    def request(self, method: str, path: str, body: object | None = None,
                content_type: str = "application/json") -> dict[str, object]:
        """One raw API call as admin (e.g. a status subresource, which kubectl 1.20 cannot address); returns the
        decoded response and raises KubeEnvError with the server's message on an error status."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.admin_token}", "Content-Type": content_type,
            "Accept": "application/json"})
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise KubeEnvError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
        except OSError as e:
            raise KubeEnvError(f"{method} {path}: {e}") from e

    def patch_status(self, path: str, status: dict[str, object]) -> dict[str, object]:
        """Merge-patch `status` into the object at API `path` (e.g. /api/v1/nodes/n1) through /status."""
        return self.request("PATCH", f"{path}/status", {"status": status}, "application/merge-patch+json")

    def create_node(self, name: str, labels: dict[str, str] | None = None, internal_ip: str | None = None) -> None:
        """A Node that looks like a healthy kubelet registered it: Ready, with an InternalIP when given."""
        self.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                               "metadata": {"name": name, "labels": labels or {}}})
        status: dict[str, object] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                                     "message": "test node"}]}
        if internal_ip:
            status["addresses"] = [{"type": "InternalIP", "address": internal_ip}]
        self.patch_status(f"/api/v1/nodes/{name}", status)

    def create_ready_pod(self, namespace: str, name: str, node: str, labels: dict[str, str],
                         pod_ips: Sequence[str]) -> None:
        """A Pod bound to `node` and marked Running + Ready, as the kubelet would; with kube-controller-manager
        running it becomes a ready endpoint of every Service that selects it."""
        self.request("POST", f"/api/v1/namespaces/{namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "example.invalid/none"}]}})
        self.set_pod_ready(namespace, name, True, pod_ips)

    def set_pod_ready(self, namespace: str, name: str, ready: bool, pod_ips: Sequence[str] = ()) -> None:
        flag = "True" if ready else "False"
        status: dict[str, object] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag}],
        }
        if pod_ips:
            status["podIP"] = pod_ips[0]
            status["podIPs"] = [{"ip": ip} for ip in pod_ips]
        self.patch_status(f"/api/v1/namespaces/{namespace}/pods/{name}", status)

    def apply_crds(self, directory: Path, timeout: float = 60.0) -> list[str]:
        """Apply every CRD in `directory` and wait until all are Established; returns their names."""
        out = self.kubectl("apply", "-f", str(directory), "-o", "name").stdout.split()
        names = [n for n in out if n.startswith("customresourcedefinition")]
        if names:
            self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *names)
        return [n.split("/", 1)[1] for n in names]

    def apply_deploy_rbac(self, deploy_dir: Path) -> None:
        """The namespace, ServiceAccounts, roles and bindings of deploy/: the controller and speaker run with the
        tokens of those accounts (kubeconfig_path("controller"/"speaker")), so a missing verb fails a test."""
        self.kubectl("apply", "-f", str(deploy_dir / "namespace.yaml"), "-f", str(deploy_dir / "rbac.yaml"))


# ---- progress of the control plane's build ------------------------------------------------------------------------
# scripts/install-kube.sh builds kube-apiserver, kube-controller-manager and kubectl from source (~5 minutes on two
# cores) with its output in a log file: without a line now and then, `make demo` looks hung. The watcher prints the
# elapsed time and the build's current step (the last "+++" line kube's hack/ scripts write, else the last line).

BUILD_PROGRESS_EVERY_S = 30.0


def build_step(log_text: str) -> str:
    """The build's current step, from its log: the last `+++ [MMDD hh:mm:ss] what` line's `what`."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith("+++")]
    step = (marked or lines or ["starting"])[-1].lstrip("+ ")
    if step.startswith("[") and "]" in step:  # kube's timestamp: the elapsed time says it better
        step = step.split("]", 1)[1].strip()
    return step if len(step) <= 100 else step[:97] + "..."


def build_progress_line(elapsed_s: float, log_text: str) -> str:
    minutes, seconds = divmod(int(elapsed_s), 60)
    return f"[install-kube] still building, {minutes}m{seconds:02d}s elapsed (usually ~5 min): {build_step(log_text)}"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return _pid_alive(pid)
    return state != "Z"


def watch_build(log: Path, pid: int, every_s: float = BUILD_PROGRESS_EVERY_S,
                write: Callable[[str], object] | None = None) -> None:
    """Print a progress line every `every_s` seconds until process `pid` (the build) has exited."""
    emit = write or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.monotonic()
    while True:
        deadline = time.monotonic() + every_s
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(min(0.5, every_s))
        try:
            text = log.read_text(errors="replace")[-20_000:]
        except OSError:
            text = ""
        emit(build_progress_line(time.monotonic() - started, text))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m metallb_fast.testing.kubeenv watch-build LOG --pid PID [--every S]` (for install-kube.sh)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m metallb_fast.testing.kubeenv")
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch-build", help="print the build's progress until PID exits")
    watch.add_argument("log", type=Path)
    watch.add_argument("--pid", type=int, required=True)
    watch.add_argument("--every", type=float, default=BUILD_PROGRESS_EVERY_S)
    args = parser.parse_args(argv)
    watch_build(args.log, args.pid, args.every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
