"""XDP loads and answers on a host without kernel headers: the package's own UAPI tree is enough for bcc.

The responder runs (`metallb-fast respond`, the speaker's responders) in a private mount namespace where an empty
directory covers /lib/modules/<release> and /usr/src and BCC_KERNEL_SOURCE is unset, as on a cloud or immutable
host, and answers a real arping from the lab's client in the kernel. Compiled against the shipped tree, the program
is the very same BPF code as compiled against a full kernel header tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from metallb_fast.dataplane import kheaders, xdp
from metallb_fast.lab import Lab
from metallb_fast.lab.probe import read_ready
from metallb_fast.lab.tools import RespondProcess, arping
from metallb_fast.lab.waiting import wait_for
from tests.conftest import require, require_root

VIP = IPv4Address("192.0.2.201")
RELEASE = os.uname().release

# Runs before the responder, inside `unshare -m` (mounts private to it: the host keeps its headers): covers every
# place bcc could find headers, then checks they are really gone.
HIDE = """
set -eu
empty="$(mktemp -d)"
mkdir -p "/lib/modules/$1" /usr/src
mount --bind "$empty" "/lib/modules/$1"
mount --bind "$empty" /usr/src
if [ -e /sys/kernel/kheaders.tar.xz ]; then mount --bind /dev/null /sys/kernel/kheaders.tar.xz; fi
for found in "/lib/modules/$1/build" "/lib/modules/$1/source" /usr/src/linux-headers-*; do
    if [ -e "$found" ]; then echo "still visible: $found" >&2; exit 97; fi
done
shift
exec "$@"
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("unshare", "mount", "arping"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    require((kheaders.SHIPPED / kheaders.KCONFIG).is_file(), f"the shipped header tree {kheaders.SHIPPED}")
    with Lab(nodes=1, clients=1, direct=True) as lab:
        yield lab


def test_xdp_answers_with_the_host_headers_hidden(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kheaders.ENV, raising=False)  # the child inherits the environment: no header hint
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", HIDE, "hide", RELEASE,
            sys.executable, "-m", "metallb_fast.cli", "respond", "--backend", "xdp", "--interface", "eth0",
            "--address", str(VIP), "--json"]
    popen = lab.popen(lab.nodes[0].netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not read_ready(popen, 60):
        popen.kill()
        _, err = popen.communicate(timeout=10)
        raise AssertionError(f"xdp did not load without host headers (exit {popen.returncode}): {err[-3000:]}")
    proc = RespondProcess(popen, "xdp")
    try:
        macs = wait_for(lambda: arping(lab, lab.clients[0].netns, VIP, count=1, wait_s=1), timeout=20,
                        what="an ARP reply from the XDP responder")
    finally:
        stats = proc.stop()
    assert macs[0] == lab.nodes[0].mac("eth0")
    assert stats["backend"] == "xdp"
    assert stats["replies"] >= 1, stats  # answered by the program's counters: in the kernel, not by Linux


def test_the_shipped_tree_compiles_the_same_program_as_full_kernel_headers() -> None:
    """Nothing in the kernel-internal headers changes the program: its BPF instructions are identical."""
    require_root()
    host = Path("/lib/modules") / RELEASE / "build"
    require((host / kheaders.KCONFIG).is_file() or (host.parent / "source" / kheaders.KCONFIG).is_file(),
            f"full kernel headers at {host} (scripts/install.sh links Debian's)")
    code = {}
    for kind, source in (("shipped", str(kheaders.SHIPPED)), ("host", "")):
        done = subprocess.run([sys.executable, "-c", DUMP], env={**os.environ, kheaders.ENV: source},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        code[kind] = done.stdout.split()[-1]
    assert code["shipped"] == code["host"]


# bcc reads BCC_KERNEL_SOURCE at each compile; an empty value means bcc's own search (/lib/modules).
DUMP = f"""
import hashlib, os
from metallb_fast.dataplane import wire, xdp, xdp_loader
if not os.environ["{kheaders.ENV}"]:
    del os.environ["{kheaders.ENV}"]
bcc = xdp_loader.import_bcc()
cflags = [*wire.cflags(), "-DMAX_VIPS=4096", "-DFLOOD_SOURCES=16384"]
program = bcc.BPF(src_file=str(xdp.source_path()).encode(), cflags=cflags)
print(hashlib.sha256(program.dump_func(xdp.FUNCTION_NAME.encode())).hexdigest())
"""


# ----------------------------------------------------------------------------------- which headers, in which order


def tree(path: Path, arch: str | None = None) -> Path:
    """A header tree as find() recognises it, for this machine's architecture unless `arch` says another."""
    (path / kheaders.KCONFIG).parent.mkdir(parents=True)
    (path / kheaders.KCONFIG).write_text("")
    (path / "arch" / (arch or kheaders._kernel_arch()) / "include").mkdir(parents=True)
    return path


def test_a_shipped_tree_of_another_architecture_is_passed_over_for_the_hosts(tmp_path: Path) -> None:
    other = "arm64" if kheaders._kernel_arch() != "arm64" else "x86"
    shipped, modules = tree(tmp_path / "shipped", arch=other), tmp_path / "modules"
    host = tree(modules / "6.1.0" / "build")
    found = kheaders.find({}, shipped=shipped, modules=modules, kheaders=tmp_path / "none", release="6.1.0")
    assert found == kheaders.HeaderSource("host", host)


def test_the_operators_choice_comes_first_then_the_shipped_tree(tmp_path: Path) -> None:
    shipped, modules = tree(tmp_path / "shipped"), tmp_path / "modules"
    tree(modules / "6.1.0" / "build")
    where = {"shipped": shipped, "modules": modules, "kheaders": tmp_path / "none", "release": "6.1.0"}
    assert kheaders.find({"BCC_KERNEL_SOURCE": "/opt/k"}, **where) == kheaders.HeaderSource("env", Path("/opt/k"))
    assert kheaders.find({}, **where) == kheaders.HeaderSource("shipped", shipped)


def test_without_the_shipped_tree_bcc_finds_the_hosts_or_the_kernels(tmp_path: Path) -> None:
    modules, archive = tmp_path / "modules", tmp_path / "kheaders.tar.xz"
    where = {"shipped": tmp_path / "gone", "modules": modules, "kheaders": archive, "release": "6.1.0"}
    assert kheaders.find({}, **where) is None
    archive.write_bytes(b"")
    assert kheaders.find({}, **where) == kheaders.HeaderSource("kheaders", archive)
    tree(modules / "6.1.0" / "source")
    assert kheaders.find({}, **where) == kheaders.HeaderSource("host", modules / "6.1.0" / "source")


def test_the_shipped_tree_is_named_to_bcc_and_a_missing_one_says_what_to_do(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    shipped = tree(tmp_path / "shipped")
    assert kheaders.arrange_for_bcc(environ, shipped=shipped).kind == "shipped"
    assert environ == {"BCC_KERNEL_SOURCE": str(shipped)}
    assert kheaders.find(environ, shipped=shipped) == kheaders.HeaderSource("shipped", shipped)
    with pytest.raises(xdp.ResponderError, match="set BCC_KERNEL_SOURCE"):
        kheaders.arrange_for_bcc({}, shipped=tmp_path / "gone", modules=tmp_path, kheaders=tmp_path / "none")


def test_the_shipped_tree_holds_uapi_headers_and_metallb_fasts_shims_only() -> None:
    """No kernel-internal header slips in: outside the uapi directories only the shims, each saying so."""
    files = [p for p in kheaders.SHIPPED.rglob("*.h")]
    assert files, f"no headers in {kheaders.SHIPPED}: run scripts/kernel-headers.sh"
    for path in files:
        relative = path.relative_to(kheaders.SHIPPED)
        if "uapi" not in relative.parts:
            assert "metallb-fast" in path.read_text(), relative
