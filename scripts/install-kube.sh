#!/usr/bin/env bash
# Obtain a real Kubernetes control plane for the tests: kube-apiserver, kube-controller-manager and kubectl built
# from Debian bookworm's `kubernetes` source package with Debian's golang-1.19, plus Debian's etcd-server.
# No registry ships these binaries, so we build them once and cache them under ~/.cache/metallb-fast/kube/bin;
# when they are cached this script returns at once. The system's apt configuration is never changed: source and
# toolchain downloads go through a private sources list, private package lists and a private archive dir.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/metallb-fast"
KUBE_DIR="$CACHE/kube"
BIN_DIR="$KUBE_DIR/bin"
BINARIES=(kube-apiserver kube-controller-manager kubectl)
JOBS=2
# Bump when the build recipe changes (a new source fix): cached binaries of an older recipe are rebuilt.
RECIPE=3

VENV_PYTHON="${VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}/bin/python"

log() { printf '[install-kube] %s\n' "$*" >&2; }

have_binaries() {
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x "$BIN_DIR/$b" ]] || return 1
    done
    [[ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" == "$RECIPE" ]]
}

# Debian packages from the system's own apt sources: etcd and openssl run the tests' control plane; dpkg-dev
# (dpkg-source, dpkg-parsechangelog, patch, xz) unpacks the source package and is needed only to build.
install_debs() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    log "installing Debian packages: ${missing[*]}"
    if [[ ! -f "$CACHE/apt-updated" ]] || [[ -n "$(find "$CACHE/apt-updated" -mmin +720)" ]]; then
        apt-get update -qq
        touch "$CACHE/apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # etcd-server's package starts a system etcd on the default ports; the tests run their own on free ports.
    if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1 \
        && systemctl is-active --quiet etcd 2>/dev/null; then
        systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
}

# apt-get with every piece of state in $APT_DIR, so `apt-get update` here leaves the system's lists alone.
private_apt() {
    apt-get -q \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::Cache="$APT_DIR/cache" \
        -o Dir::Cache::Archives="$APT_DIR/archives" \
        -o APT::Sandbox::User=root \
        -o Acquire::Languages=none \
        "$@"
}

BUILD_DIR=""

build_kube() {
    local started work
    started=$SECONDS
    mkdir -p "$CACHE"
    work="$(mktemp -d "$CACHE/kube-build.XXXXXX")"
    # The build tree is ~3 GB; never leave it behind, even when the build fails (the trap outlives this function,
    # so it names a global).
    BUILD_DIR="$work"
    trap '[[ -n "$BUILD_DIR" ]] && rm -rf "$BUILD_DIR"' EXIT
    APT_DIR="$work/apt"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache" "$APT_DIR/archives/partial" "$APT_DIR/sources.list.d"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    cat >"$APT_DIR/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb-src [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
EOF
    log "fetching package lists into a private apt dir"
    private_apt update >/dev/null

    log "downloading the kubernetes source package and the Go toolchain"
    mkdir -p "$work/src" "$work/debs" "$work/root"
    (cd "$work/src" && private_apt source --download-only kubernetes >/dev/null)
    (cd "$work/debs" && private_apt download golang-1.19-go golang-1.19-src rsync libpopt0 \
        golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null)
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg -x "$deb" "$work/root"
    done

    log "unpacking the source tree"
    local dsc
    dsc="$(ls "$work"/src/kubernetes_*.dsc | head -n1)"
    dpkg-source --no-check -x "$dsc" "$work/kubernetes" >/dev/null

    # Go >= 1.18 changed map internals that the vendored reflect2 (and json-iterator on top of it) poke at: the
    # apiserver then crashes decoding the first custom resource. Debian's packaged copies are fixed.
    local vendor="$work/kubernetes/vendor/github.com"
    rm -rf "$vendor/modern-go/reflect2" "$vendor/json-iterator/go"
    cp -a "$work/root/usr/share/gocode/src/github.com/modern-go/reflect2" "$vendor/modern-go/reflect2"
    cp -a "$work/root/usr/share/gocode/src/github.com/json-iterator/go" "$vendor/json-iterator/go"

    # Since Go 1.16, reflect.Zero shares one zero value, so the OpenAPI validator's "zero value means null" test
    # turns true for "": the apiserver rejects `field: ""` in custom resources as null (kubernetes#99804).
    # Upstream's fix (kube-openapi#230) keeps only the nil test; apply it to kube-openapi's fork (what the CRD
    # handler uses) and to go-openapi's original.
    local zero_test='if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {'
    local typego
    for typego in "$vendor/../k8s.io/kube-openapi/pkg/validation/validate/type.go" \
                  "$vendor/go-openapi/validate/type.go"; do
        grep -qF "$zero_test" "$typego" || { log "expected zero-value test not found in $typego"; exit 1; }
        ZERO_TEST="$zero_test" perl -0pi -e 's/\Q$ENV{ZERO_TEST}\E/if data == nil {/' "$typego"
        ! grep -qF "$zero_test" "$typego" || { log "patching $typego failed"; exit 1; }
    done

    local goroot="$work/root/usr/lib/go-1.19"
    local version
    version="v$(dpkg-parsechangelog -l "$work/kubernetes/debian/changelog" -S Version 2>/dev/null \
        | sed -E 's/^.*really//; s/-[^-]*$//')" || version=""
    [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || version="v1.20.2"

    log "building ${BINARIES[*]} ($version) with $("$goroot/bin/go" version | cut -d' ' -f3), $JOBS jobs"
    mkdir -p "$work/gopath/src/k8s.io" "$work/gocache"
    ln -s "$work/kubernetes" "$work/gopath/src/k8s.io/kubernetes"
    (
        cd "$work/gopath/src/k8s.io/kubernetes"
        export GOROOT="$goroot" GOPATH="$work/gopath" GOCACHE="$work/gocache"
        export PATH="$goroot/bin:$work/root/usr/bin:$PATH"
        export LD_LIBRARY_PATH="$work/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export GO111MODULE=off GOPROXY=off GOFLAGS="-p=$JOBS" CGO_ENABLED=0 GOTOOLCHAIN=local
        export KUBE_GIT_VERSION="$version" KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian-source
        export KUBE_BUILD_PLATFORMS=linux/amd64 KUBE_VERBOSE=1
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >"$work/build.log" 2>&1
    ) &
    local build=$! watcher=""
    # A progress line every 30 s (elapsed time and the build's current step) from the venv's Python, when there is
    # one already (`make demo` installs it first); the build runs the same without.
    if "$VENV_PYTHON" -c 'import metallb_fast.testing.kubeenv' 2>/dev/null; then
        "$VENV_PYTHON" -m metallb_fast.testing.kubeenv watch-build "$work/build.log" --pid "$build" &
        watcher=$!
    fi
    if ! wait "$build"; then
        [[ -n "$watcher" ]] && wait "$watcher" 2>/dev/null
        tail -n 40 "$work/build.log" >&2
        exit 1
    fi
    [[ -n "$watcher" ]] && wait "$watcher" 2>/dev/null
    mkdir -p "$BIN_DIR"
    local b out="$work/kubernetes/_output/local/bin/linux/amd64"
    for b in "${BINARIES[@]}"; do
        # Copy then rename so a concurrent reader never sees a half-written binary.
        cp "$out/$b" "$BIN_DIR/.$b.tmp"
        mv -f "$BIN_DIR/.$b.tmp" "$BIN_DIR/$b"
    done
    echo "$RECIPE" >"$BIN_DIR/.recipe"
    rm -rf "$work"
    BUILD_DIR=""
    log "built in $((SECONDS - started)) s: $("$BIN_DIR/kube-apiserver" --version)"
}

main() {
    mkdir -p "$CACHE"
    install_debs etcd-server openssl
    if have_binaries; then
        return 0
    fi
    # One build at a time: a second `make test` waits for the first one's binaries instead of building again.
    exec 9>"$CACHE/kube-build.lock"
    flock 9
    have_binaries && return 0
    # Holding the lock, any build dir left is from a run that was killed before its cleanup trap ran.
    rm -rf "$CACHE"/kube-build.*/
    install_debs dpkg-dev
    build_kube
}

main "$@"
