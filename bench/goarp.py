"""The MetalLB-like Go responder the flood bench compares against: found in the cache, else built from its source
(a Go program on mdlayher/arp, built offline from Debian packages by its own build.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CACHE = Path.home() / ".cache" / "metallb-fast" / "goarp"
BINARY = CACHE / "goarp"
# Where the project's shared tree keeps it, beside the checkout; --goarp-src (or MLBF_GOARP_SRC) names another.
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "goarp"
DEBIAN_PACKAGES = ("golang-go", "golang-github-mdlayher-arp-dev")


class GoarpUnavailable(RuntimeError):
    """The Go responder cannot be found or built here; the message says what to install or pass."""


def missing_packages(installed: set[str]) -> list[str]:
    return [name for name in DEBIAN_PACKAGES if name not in installed]


def _installed(names: tuple[str, ...]) -> set[str]:
    """Those of `names` dpkg reports installed."""
    found = set()
    for name in names:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.endswith(" installed"):
            found.add(name)
    return found


def goarp_binary(source: Path | None = None) -> Path:
    """The goarp executable, built into CACHE on first use."""
    if BINARY.is_file() and os.access(BINARY, os.X_OK):
        return BINARY
    source = source or Path(os.environ.get("MLBF_GOARP_SRC", DEFAULT_SOURCE))
    if not (source / "main.go").is_file() or not (source / "build.sh").is_file():
        raise GoarpUnavailable(
            f"goarp: no binary at {BINARY} and no source (main.go, build.sh) in {source}: "
            "pass --goarp-src DIR (the MetalLB-like Go responder) or set MLBF_GOARP_SRC"
        )
    missing = missing_packages(_installed(DEBIAN_PACKAGES))
    if missing:
        raise GoarpUnavailable(
            f"goarp: building it needs the Debian package(s) {', '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    build = subprocess.run(["sh", str(source / "build.sh"), str(CACHE)], capture_output=True, text=True, timeout=600)
    if build.returncode != 0 or not BINARY.is_file():
        raise GoarpUnavailable(f"goarp: {source / 'build.sh'} failed: {(build.stderr or build.stdout).strip()[-800:]}")
    return BINARY
