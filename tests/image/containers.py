"""The image run as the deploy/ manifests run it: podman flags from their securityContext, and a ClusterLab whose
controller and speakers are containers of the image instead of processes of this checkout.

Containers are named `mlbf-img-<pid>-<program>` (pid: this test run's), so a later run removes a crashed run's
leftovers by name, and only those whose run is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from metallb_fast.lab.cluster import METALLB_FAST, STOP_TIMEOUT_S, ClusterLab
from metallb_fast.lab.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "mlbf-img-"
# runc: crun (podman's default) cannot run here; the sandbox cannot raise rlimits (no CAP_SYS_RESOURCE).
PODMAN_RUN = ["podman", "--runtime", "/usr/sbin/runc", "run", "--rm", "--pull=never",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def build_image() -> str:
    """The image reference scripts/image.sh prints (it builds, or finds the cached build up to date)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "image.sh")], capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise AssertionError(f"scripts/image.sh failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def pod_spec(manifest: str) -> dict[str, Any]:
    """The Pod template spec of the Deployment or DaemonSet in deploy/<manifest>."""
    for document in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()):
        if document and document.get("kind") in ("Deployment", "DaemonSet"):
            return dict(document["spec"]["template"]["spec"])
    raise AssertionError(f"no Deployment or DaemonSet in deploy/{manifest}")


def security_flags(spec: Mapping[str, Any]) -> list[str]:
    """podman run flags for the single container's securityContext (over the Pod's), and an emptyDir tmpfs at each
    of its mounts: what a kubelet gives the container."""
    (container,) = spec["containers"]
    context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    flags = []
    user = context.get("runAsUser")
    if context.get("runAsNonRoot"):
        assert user not in (None, 0), f"runAsNonRoot without a non-root runAsUser: {context}"
    if user is not None:
        flags += ["--user", f"{user}:{context.get('runAsGroup', user)}"]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if context.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]  # writable only where the manifest mounts something
    capabilities = context.get("capabilities", {})
    flags += [f"--cap-drop={c.lower()}" for c in capabilities.get("drop", [])]
    flags += [f"--cap-add={c.lower()}" for c in capabilities.get("add", [])]
    empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty_dirs:
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,nosuid,nodev,mode=1777"]
    # No seccompProfile in the manifests: the kubelet then runs the container Unconfined (Kubernetes' default
    # without the SeccompDefault feature), not under podman's default profile.
    flags += ["--security-opt", "seccomp=unconfined"]
    return flags


def remove_stale_containers() -> None:
    """Remove containers a crashed earlier run of these tests left (its pid is gone)."""
    names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=False).stdout.split()
    for name in names:
        found = re.fullmatch(rf"{PREFIX}(\d+)-.*", name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)


def container_name(program: str) -> str:
    return f"{PREFIX}{os.getpid()}-{program}"


def remove_containers(names: Sequence[str]) -> None:
    for name in names:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)


class ImageClusterLab(ClusterLab):
    """ClusterLab whose programs are the image's containers, with the manifests' security contexts: the
    controller on the host's network (where the API server listens), each speaker on its node namespace's
    network (hostNetwork: true, as the DaemonSet), the lab's bpffs where the manifest mounts the host's."""

    def __init__(self, *args: Any, image: str, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.image = image
        self.containers: list[str] = []
        self._readable = self.log_dir / "readable"

    def _spawn(self, name: str, netns: str | None, argv: list[str], append: bool = False) -> None:
        assert argv[: len(METALLB_FAST)] == METALLB_FAST, argv
        args = argv[len(METALLB_FAST):]
        program = args[0]
        spec = pod_spec("controller.yaml" if program == "controller" else "speaker.yaml")
        mounts = [*self._kubeconfig_mounts(args), *self._pin_dir_mounts(args)]
        network = ["--network", "host"] if netns is None else ["--network", f"ns:/run/netns/{netns}"]
        container = container_name(name)
        self.containers.append(container)
        command = [*PODMAN_RUN, "--name", container, *network, *security_flags(spec), *mounts, self.image, *args]
        self.processes[name] = ManagedProcess(name, command, self.log_dir / f"{name}.log")
        self.processes[name].start(truncate=not append)

    def _kubeconfig_mounts(self, args: list[str]) -> Iterator[str]:
        """The kubeconfig and its CA, copied where any uid may read them (the controller runs as nobody; the test
        API server's work dir is root's), and mounted read-only at the same path."""
        index = args.index("--kubeconfig") + 1
        source = Path(args[index])
        config = json.loads(source.read_text())
        target = self._readable / source.name
        target.parent.mkdir(mode=0o755, exist_ok=True)
        for cluster in config["clusters"]:
            ca = Path(cluster["cluster"]["certificate-authority"])
            shutil.copyfile(ca, self._readable / ca.name)
            cluster["cluster"]["certificate-authority"] = str(self._readable / ca.name)
        target.write_text(json.dumps(config))
        for path in self._readable.iterdir():
            path.chmod(0o644)
        args[index] = str(target)
        yield from ("-v", f"{self._readable}:{self._readable}:ro")

    def _pin_dir_mounts(self, args: list[str]) -> Iterator[str]:
        if "--pin-dir" in args:
            bpffs = Path(args[args.index("--pin-dir") + 1]).parent
            yield from ("-v", f"{bpffs}:{bpffs}")

    def stop_programs(self) -> dict[str, int | None]:
        """SIGTERM to each container's own process (pid 1 in it), as the kubelet stops a Pod, then each exit status
        as podman run reports it. (A signal to the podman client instead races its cleanup of a --rm container.)"""
        try:
            for name in self.processes:
                subprocess.run(["podman", "kill", "--signal", "TERM", container_name(name)], capture_output=True,
                               check=False)
            for name, proc in self.processes.items():
                try:
                    self.returncodes[name] = proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    remove_containers([container_name(name)])
                    self.returncodes[name] = proc.stop(timeout=5)
            self.processes.clear()
            return dict(self.returncodes)
        finally:
            remove_containers(self.containers)
