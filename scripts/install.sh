#!/usr/bin/env bash
# Bring a fresh Debian 12 machine (as root) to a working state for metallb-fast. Idempotent: every step checks
# first and does only what is missing, so `make demo` and `make test` can always call it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/metallb-fast"
mkdir -p "$STAMP_DIR"

log() { printf '[install] %s\n' "$*" >&2; }

DEB_PACKAGES=(
    python3-bpfcc libbpfcc linux-headers-amd64 bpftool
    iproute2 iputils-arping ndisc6 ethtool tcpdump
    # The failover lab's faults (metallb_fast/lab/faults.py): memberlist blocked and LAN loss at a switch port.
    nftables
    gcc make rsync python3-venv python3-dev
    # The Go memberlist peer of the interop tests (tests/interop/mlnode): Go and Debian's memberlist 0.2.2,
    # whose -dev package pulls its build dependencies (go-msgpack, go-sockaddr, miekg-dns, go-metrics, ...).
    golang-go golang-github-hashicorp-memberlist-dev
    # bench/arp_flood.py's MetalLB-like Go responder (bench/goarp.py builds it): mdlayher/arp.
    golang-github-mdlayher-arp-dev
    # The OCI image (scripts/image.sh, tests/image): a Debian base without a registry, built with buildah, run with
    # podman on runc (crun cannot run here).
    mmdebstrap buildah podman runc uidmap fuse-overlayfs bc
)

install_debian_packages() {
    local missing=()
    for pkg in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        # Refresh the package lists when they are missing (images often ship without them) or older than a day.
        if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null \
            || [[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin +1440 -print -quit)" ]]; then
            apt-get update -qq
        fi
        # Wait for a dpkg lock held by another install instead of failing at once.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# bcc looks for kernel sources at /lib/modules/$(uname -r)/{build,source}. This machine's kernel has no
# packaged headers; Debian's newest linux-headers (generated -amd64 dir + -common sources) work for XDP code.
arrange_kernel_headers() {
    local kver moddir amd64 common
    kver="$(uname -r)"
    moddir="/lib/modules/$kver"
    if [[ -e "$moddir/build/include/linux/kconfig.h" || -e "$moddir/source/include/linux/kconfig.h" ]]; then
        return 0
    fi
    amd64="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)"
    common="$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)"
    if [[ -z "$amd64" || -z "$common" ]]; then
        log "no Debian linux-headers found under /usr/src"; return 1
    fi
    log "linking kernel headers for bcc: $moddir -> $amd64 + $common"
    mkdir -p "$moddir"
    ln -sfn "$amd64" "$moddir/build"
    ln -sfn "$common" "$moddir/source"
}

make_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV from $($PYTHON --version)"
        "$PYTHON" -m venv "$VENV"
    fi
    # Debian's bcc is pure Python over libbcc.so (ctypes); link just that package into the venv so the venv
    # does not see Debian's other modules. (The PyPI package named "bcc" is an unrelated project.)
    local site
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if [[ ! -e "$site/bcc" ]]; then
        ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
    fi
}

# tests/interop/mlnode: GOPATH-mode build against /usr/share/gocode only (no modules, no network), rebuilt when
# main.go changes. The stamp holds main.go's sha256; tests/interop/gonode.py compares it to spot a stale binary.
build_mlnode() {
    local src="$ROOT/tests/interop/mlnode/main.go" out="$STAMP_DIR/mlnode" want gopath
    want="$(sha256sum "$src" | cut -d' ' -f1)"
    if [[ -x "$out/mlnode" && "$(cat "$out/stamp" 2>/dev/null || true)" == "$want" ]]; then
        return 0
    fi
    log "building mlnode (Go memberlist $(dpkg-query -W -f='${Version}' golang-github-hashicorp-memberlist-dev))"
    gopath="$(mktemp -d)"
    mkdir -p "$gopath/src/mlnode" "$out"
    cp "$src" "$gopath/src/mlnode/main.go"
    (
        cd "$gopath/src/mlnode"
        env GO111MODULE=off GOPATH="/usr/share/gocode:$gopath" GOCACHE="$gopath/cache" GOPROXY=off GOFLAGS= \
            GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o "$out/mlnode.new" .
    ) || { rm -rf "$gopath"; log "mlnode build failed"; return 1; }
    rm -rf "$gopath"
    mv -f "$out/mlnode.new" "$out/mlnode"
    echo "$want" >"$out/stamp"
}

pip_install() {
    local want have
    # What the build reads (the Cython sources and the Python definitions setup.py generates
    # ext/wire_contract.pxd from, not the files it generates) and this script (a change of the extras installed
    # below must reach venvs made before it).
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT"/ext/*.pyx "$ROOT"/ext/*.h \
        $(ls "$ROOT"/ext/*.pxd | grep -v '/wire_contract\.pxd$') "$ROOT"/metallb_fast/dataplane/*.py \
        "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
    have="$(cat "$VENV/.metallb-fast-installed" 2>/dev/null || true)"
    if [[ "$want" != "$have" ]] || ! "$VENV/bin/python" -c 'import metallb_fast.dataplane._ring, metallb_fast.speaker._election' 2>/dev/null; then
        # bench: the benchmarks' plots (matplotlib), so that every benchmark in bench/ runs as documented.
        log "pip install -e .[test,bench]"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test,bench]"
        echo "$want" >"$VENV/.metallb-fast-installed"
    fi
}

install_debian_packages
arrange_kernel_headers
build_mlnode
make_venv
pip_install
log "ready: $VENV"
