"""The speaker's manifest grants exactly what the fast path needs, and every capability of it is needed.

Each backend runs (`metallb-fast respond`, the same responders the speaker opens) as root with its capability
bounding set cut down to the manifest's `add` list, as a container with `drop: [ALL]` gets it, and answers a real
arping from the lab's client; with any one of those capabilities taken away, XDP no longer loads or announces.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from metallb_fast.lab import Lab
from metallb_fast.lab.tools import arping
from metallb_fast.lab.waiting import wait_for
from tests.conftest import require, require_root

ROOT = Path(__file__).resolve().parents[2]
VIP = IPv4Address("192.0.2.200")


def speaker_security_context() -> dict:
    for document in yaml.safe_load_all((ROOT / "deploy" / "speaker.yaml").read_text()):
        if document and document.get("kind") == "DaemonSet":
            (container,) = document["spec"]["template"]["spec"]["containers"]
            return container["securityContext"]
    raise AssertionError("no DaemonSet in deploy/speaker.yaml")


MANIFEST_CAPS = tuple(speaker_security_context()["capabilities"]["add"])


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("setpriv", "arping"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    with Lab(nodes=1, clients=1, direct=True) as lab:
        yield lab


def respond_with(lab: Lab, caps: tuple[str, ...], backend: str) -> subprocess.Popen[str]:
    listed = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
    argv = ["setpriv", f"--bounding-set={listed}", f"--inh-caps={listed}", "--",
            sys.executable, "-m", "metallb_fast.cli", "respond", "--backend", backend, "--interface", "eth0",
            "--address", str(VIP), "--announce"]
    return lab.popen(lab.nodes[0].netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def test_the_manifest_asks_for_no_more_than_it_needs() -> None:
    context = speaker_security_context()
    assert context["capabilities"]["drop"] == ["ALL"]
    assert sorted(MANIFEST_CAPS) == ["BPF", "NET_ADMIN", "NET_RAW", "PERFMON"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("backend", ["xdp", "ring"])
def test_each_backend_answers_with_the_manifests_capabilities(lab: Lab, backend: str) -> None:
    proc = respond_with(lab, MANIFEST_CAPS, backend)
    try:
        macs = wait_for(lambda: proc.poll() is None and arping(lab, lab.clients[0].netns, VIP, count=1, wait_s=1),
                        timeout=30, what=f"an answer from {backend}")
        assert macs[0] == lab.nodes[0].mac("eth0")
    finally:
        code, err = stop(proc)
    assert code == 0, err[-2000:]


@pytest.mark.parametrize("missing", ["BPF", "NET_ADMIN", "NET_RAW", "PERFMON"])
def test_without_any_one_of_them_xdp_does_not_run(lab: Lab, missing: str) -> None:
    proc = respond_with(lab, tuple(c for c in MANIFEST_CAPS if c != missing), "xdp")
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise AssertionError(f"xdp ran without CAP_{missing}") from None
    _, err = proc.communicate()
    assert proc.returncode != 0 and "xdp" in err, err[-2000:]
