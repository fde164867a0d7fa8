"""The wheel carries what the speaker loads at run time: built, installed into a fresh venv, XDP loaded from there.

The editable install of a checkout finds metallb_fast/dataplane/xdp_responder.c in the source tree, so only a real
install shows whether the package data is in the wheel (it once was not: every installed speaker fell back to the ring).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

from tests.conftest import require, require_root

ROOT = Path(__file__).resolve().parents[2]
BCC = Path("/usr/lib/python3/dist-packages/bcc")

LOAD_XDP = textwrap.dedent(
    """
    import ipaddress, json, sys
    import metallb_fast
    from metallb_fast.dataplane.netns import in_netns
    from metallb_fast.dataplane.xdp import XdpResponder
    from metallb_fast.lab import Lab

    with Lab(nodes=1, clients=1, direct=True) as lab:
        node = lab.nodes[0]
        with in_netns(node.netns):
            responder = XdpResponder(["eth0"])
        try:
            responder.sync({(ipaddress.ip_address("192.0.2.200"), "eth0"): node.mac("eth0")})
            attached = lab.run(node.netns, ["ip", "-d", "link", "show", "eth0"]).stdout
        finally:
            responder.close()
    print(json.dumps({"package": metallb_fast.__file__, "attached": "xdp" in attached}))
    """
)


def test_an_installed_wheel_loads_the_xdp_program(tmp_path: Path) -> None:
    require_root()
    require(BCC.is_dir(), "Debian's python3-bpfcc (bcc)")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("metallb_fast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "metallb_fast/dataplane/xdp_responder.c" in names
    assert any(n.startswith("metallb_fast/dataplane/_ring") and n.endswith(".so") for n in names)
    assert any(n.startswith("metallb_fast/speaker/_election") and n.endswith(".so") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies come from this venv's site-packages (a plain path entry: its editable-install hooks are
    # not run, so `metallb_fast` can only be the wheel's); bcc as install.sh links it.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "bcc").symlink_to(BCC)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-c", LOAD_XDP], check=False, capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout.strip().splitlines()[-1]
    assert str(venv) in report and '"attached": true' in report, report
