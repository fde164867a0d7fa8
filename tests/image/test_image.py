"""The OCI image, built here (scripts/image.sh) and run as deploy/ runs it.

The controller container (the Deployment's securityContext: nobody, no capabilities, read-only root) assigns a
Service its address through the test API server with the controller ServiceAccount's token; the speaker container
(the DaemonSet's: root's uid with BPF, PERFMON, NET_ADMIN, NET_RAW only, read-only root, no host kernel headers:
the image has none) runs on a lab node's network namespace, loads XDP from the installed wheel, and the lab
client's arping is answered with the node's MAC by that program. SIGTERM stops both cleanly, and no XDP program
outlives its speaker.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv
from tests.conftest import require, require_root
from tests.e2e.test_cluster_lab import CONFIG, service_manifest
from tests.image.containers import (
    PODMAN_RUN,
    ImageClusterLab,
    build_image,
    pod_spec,
    remove_stale_containers,
    security_flags,
)

# A cold build (Debian base, apt, PyPI, Cython) takes ~3 minutes on 2 cores; cached, a few seconds.
BUILD_TIMEOUT_S = 1800


@pytest.fixture(scope="module")
def image() -> str:
    require_root()
    for tool in ("mmdebstrap", "buildah", "podman", "/usr/sbin/runc"):
        require(shutil.which(tool) is not None, f"the {tool} tool (make install)")
    remove_stale_containers()
    return build_image()


def run_in_image(image: str, manifest: str, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [*PODMAN_RUN, "--network", "none", *security_flags(pod_spec(manifest)), "--entrypoint", argv[0],
               image, *argv[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_the_image_holds_the_wheel_and_only_what_runs(image: str) -> None:
    """Installed from the wheel (not the source tree), no pip/setuptools, no test or bench extras, no kernel
    headers, no kubernetes package; bcc's Python bindings and the shipped UAPI tree are there."""
    probe = """
import importlib.util as u, json, metallb_fast, metallb_fast.dataplane.kheaders as k, os
print(json.dumps({
    "package": metallb_fast.__file__,
    "absent": [m for m in ("pip", "setuptools", "pytest", "hypothesis", "Cython", "matplotlib", "kubernetes")
               if u.find_spec(m) is not None],
    "bcc": u.find_spec("bcc") is not None,
    "headers": k.find().kind,
    "host_headers": os.path.exists("/lib/modules") or os.path.exists("/usr/src/linux-headers-amd64"),
}))
"""
    done = run_in_image(image, "controller.yaml", "python3", "-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout.strip().splitlines()[-1]
    assert '"package": "/opt/metallb-fast/lib/python3.11/site-packages/metallb_fast/__init__.py"' in report, report
    assert '"absent": []' in report and '"bcc": true' in report, report
    assert '"headers": "shipped"' in report and '"host_headers": false' in report, report
    assert run_in_image(image, "controller.yaml", "sh", "-c", "! command -v pip pip3").returncode == 0


@pytest.fixture
def cluster(image: str, kube_controller_manager: KubeEnv, kube_namespace: str,
            tmp_path: Path) -> Iterator[ImageClusterLab]:
    require(shutil.which("arping") is not None, "the arping tool")
    kube = kube_controller_manager
    with ImageClusterLab(kube, tmp_path, nodes=1, backend="xdp", image=image) as lab:
        try:
            yield lab
        finally:
            lab.stop_and_verify([kube_namespace])  # SIGTERM to each container: exit 0, no XDP program left


@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_the_images_controller_assigns_and_its_speaker_answers_arping_through_xdp(
    cluster: ImageClusterLab, kube_namespace: str
) -> None:
    ns = kube_namespace
    cluster.apply(CONFIG)
    cluster.apply(service_manifest(ns, "web"))
    cluster.add_ready_pods(ns, "web", {"app": "web"})
    address = wait_for(lambda: cluster.ingress(ns, "web"), timeout=60, what="web's address from the controller image",
                       )[0]
    assert address.startswith("192.0.2.20")
    svc = cluster.get("service", "-n", ns, "web")
    assert svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "lan"

    (node,) = cluster.lab.nodes
    assert wait_for(lambda: cluster.resolve(address) == cluster.node_mac(node.name), timeout=60,
                    what=f"{address} answered by the speaker image"), cluster.tail(f"speaker-{node.name}")
    links = cluster.lab.run(node.netns, ["ip", "-d", "link", "show", "eth0"]).stdout
    assert "mlbf_responder" in links or "prog/xdp" in links, links  # answered by the XDP program
    assert cluster.dead_programs() == {}
