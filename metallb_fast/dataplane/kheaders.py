"""Which kernel headers bcc compiles the XDP program against.

bcc (src/cc/frontends/clang/loader.cc) compiles inside $BCC_KERNEL_SOURCE when it is set, else inside
/lib/modules/<release>/build (or .../source), and extracts /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS) when
that directory has no include/linux/kconfig.h. Most cloud and immutable hosts have none of these, and a container
sees them only through host mounts.

The program needs UAPI definitions only, so the package ships a minimal tree (kernel_headers/, generated from
Debian's headers by scripts/kernel-headers.sh) and points bcc at it by default: the same compile on every host,
nothing from the host, and a compile several times faster than against a full kernel tree. An operator who wants
other headers sets BCC_KERNEL_SOURCE; a package installed without the tree falls back to what bcc itself finds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from metallb_fast.dataplane.base import ResponderError

log = logging.getLogger(__name__)

ENV = "BCC_KERNEL_SOURCE"
SHIPPED = Path(__file__).resolve().parent / "kernel_headers"
MODULES = Path("/lib/modules")
KHEADERS = Path("/sys/kernel/kheaders.tar.xz")
KCONFIG = Path("include") / "linux" / "kconfig.h"  # bcc accepts a directory only if this file is in it


@dataclass(frozen=True)
class HeaderSource:
    """Where bcc will find its headers: `kind` is env, shipped, host or kheaders."""

    kind: str
    path: Path

    def describe(self) -> str:
        what = {
            "env": f"{ENV} (set by the operator)",
            "shipped": "the UAPI header tree shipped with metallb-fast",
            "host": "the host's kernel headers",
            "kheaders": "the running kernel's CONFIG_IKHEADERS archive",
        }[self.kind]
        return f"{what}: {self.path}"


def _kernel_arch() -> str:
    """The kernel's name for this machine's architecture (bcc looks under arch/<it>/include): the shipped tree
    holds the architectures scripts/kernel-headers.sh was run for; on another, the host's headers are used."""
    machine = os.uname().machine
    return {"x86_64": "x86", "i686": "x86", "aarch64": "arm64"}.get(machine, machine)


def find(
    environ: MutableMapping[str, str] | None = None, *, shipped: Path = SHIPPED, modules: Path = MODULES,
    kheaders: Path = KHEADERS, release: str | None = None,
) -> HeaderSource | None:
    """The headers bcc will use, in this order: the operator's BCC_KERNEL_SOURCE, the shipped tree, the host's
    /lib/modules/<release>/{build,source}, the kernel's kheaders archive; None when there is none."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV):  # the shipped tree too, once arrange_for_bcc() has named it there
        return HeaderSource("shipped" if environ[ENV] == str(shipped) else "env", Path(environ[ENV]))
    if (shipped / KCONFIG).is_file() and (shipped / "arch" / _kernel_arch() / "include").is_dir():
        return HeaderSource("shipped", shipped)
    moddir = modules / (release or os.uname().release)
    for sub in ("build", "source"):
        if (moddir / sub / KCONFIG).is_file():
            return HeaderSource("host", moddir / sub)
    if kheaders.is_file():
        return HeaderSource("kheaders", kheaders)
    return None


def arrange_for_bcc(
    environ: MutableMapping[str, str] | None = None, *, shipped: Path = SHIPPED, modules: Path = MODULES,
    kheaders: Path = KHEADERS,
) -> HeaderSource:
    """Make the next bcc compile use the headers find() picks (bcc reads BCC_KERNEL_SOURCE from this process's
    environment at each compile), or raise ResponderError saying what would do."""
    environ = os.environ if environ is None else environ
    source = find(environ, shipped=shipped, modules=modules, kheaders=kheaders)
    if source is None:
        moddir = modules / os.uname().release
        raise ResponderError(
            f"xdp: no kernel headers for bcc: this installation lacks its shipped tree ({shipped}; reinstall "
            f"metallb-fast), {moddir}/build and {moddir}/source have none, the kernel has no {kheaders} and {ENV} "
            f"is unset; set {ENV} to a kernel header tree"
        )
    if source.kind == "shipped":
        environ[ENV] = str(source.path)
    log.debug("xdp: bcc compiles against %s", source.describe())
    return source
