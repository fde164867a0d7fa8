#!/usr/bin/env bash
# Build the metallb-fast OCI image (deploy/Dockerfile) with no container registry: the base comes from Debian's
# mirror (mmdebstrap), is imported with podman, and buildah builds on it. Cached under
# ~/.cache/metallb-fast/image and idempotent: rebuilt only when the Dockerfile, its context (the files the wheel is
# built from) or this script change; buildah's layer cache keeps the Debian and PyPI layers when only the source
# does. Prints the image reference on stdout; progress and figures go to stderr.
#
# Needs (scripts/install.sh installs them): mmdebstrap buildah podman runc uidmap fuse-overlayfs.
# Usage: scripts/image.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${METALLB_FAST_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metallb-fast/image}"
BASE_REF="localhost/metallb-fast-base:bookworm"
SUITE=bookworm
FORCE=0
[[ "${1:-}" == --force ]] && FORCE=1

log() { printf '[image] %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc -l)"; }

for tool in mmdebstrap buildah podman /usr/sbin/runc bc; do
    command -v "$tool" >/dev/null || { log "$tool is missing: run 'make install' (scripts/install.sh)"; exit 1; }
done
mkdir -p "$CACHE"
# One build at a time (make image and the image test may race): the second waits, then finds it cached.
exec 9>"$CACHE/lock"
flock 9

VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/metallb_fast/__init__.py")"
IMAGE="localhost/metallb-fast:$VERSION"

# ------------------------------------------------------------------------------------------------------ base
# minbase, merged /usr by hook (else usrmerge pulls in perl), no docs/man/locales but the copyright files (one
# option each: dpkg's patterns have no braces; they stay in the image, so the Dockerfile's installs obey them too).
MMDEBSTRAP=(mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    "--dpkgopt=path-exclude=/usr/share/man/*" "--dpkgopt=path-exclude=/usr/share/locale/*"
    "--dpkgopt=path-exclude=/usr/share/info/*" "--dpkgopt=path-exclude=/usr/share/doc/*"
    "--dpkgopt=path-include=/usr/share/doc/*/copyright"
    "--aptopt=APT::Install-Recommends \"false\"" "$SUITE")
base_stamp="$(printf '%s\n' "${MMDEBSTRAP[@]}" | sha256sum | cut -c1-16)"
if [[ "$(cat "$CACHE/base.stamp" 2>/dev/null || true)" != "$base_stamp" || ! -s "$CACHE/base.tar" ]]; then
    t="$(now)"
    log "building the $SUITE base with mmdebstrap"
    "${MMDEBSTRAP[@]}" "$CACHE/base.new.tar" >"$CACHE/mmdebstrap.log" 2>&1 \
        || { log "mmdebstrap failed: see $CACHE/mmdebstrap.log"; exit 1; }
    mv -f "$CACHE/base.new.tar" "$CACHE/base.tar"
    podman image rm -f "$BASE_REF" >/dev/null 2>&1 || true
    echo "$base_stamp" >"$CACHE/base.stamp"
    log "base built in $(since "$t") s"
fi
if ! podman image exists "$BASE_REF"; then
    podman import -q "$CACHE/base.tar" "$BASE_REF" >/dev/null
fi

# ----------------------------------------------------------------------------------------------------- image
# The inputs: what the Dockerfile copies (the same filter as its .dockerignore), the Dockerfile, this script, the base.
inputs() {
    cd "$ROOT"
    {
        find pyproject.toml setup.py README.md ext metallb_fast -type f \
            ! -path '*/__pycache__/*' ! -name '*.so' ! -name '*.pyc' \( ! -path 'ext/*.c' -o -name xdp_responder.c \) \
            -print0 | sort -z | xargs -0 sha256sum
        sha256sum deploy/Dockerfile deploy/Dockerfile.dockerignore scripts/image.sh
        echo "base $base_stamp"
    } | sha256sum | cut -c1-16
}
stamp="$(inputs)"
if ((!FORCE)) && [[ "$(cat "$CACHE/image.stamp" 2>/dev/null || true)" == "$stamp" ]] && podman image exists "$IMAGE"; then
    log "$IMAGE is up to date (inputs $stamp)"
    echo "$IMAGE"
    exit 0
fi

t="$(now)"
log "building $IMAGE (inputs $stamp)"
# runc: podman's default crun cannot run here (cgroups in hybrid mode); --pull=never: the base is local only.
# The host's CA bundle for pip, for TLS-intercepting proxies, mounted beside (not over) the image's own.
ca=()
[[ -s /etc/ssl/certs/ca-certificates.crt ]] && ca=(-v /etc/ssl/certs:/run/host-ca:ro
    --build-arg PIP_CERT=/run/host-ca/ca-certificates.crt)
buildah bud --runtime /usr/sbin/runc --network=host --layers --force-rm --pull=never -q \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --build-arg "BASE=$BASE_REF" "${ca[@]}" \
    -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t "$IMAGE" "$ROOT" >"$CACHE/build.log" 2>&1 \
    || { tail -n 40 "$CACHE/build.log" >&2; log "build failed: see $CACHE/build.log"; exit 1; }
echo "$stamp" >"$CACHE/image.stamp"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "built $IMAGE in $(since "$t") s: $((size / 1000000)) MB"
# Layers of earlier builds that no tag uses any more.
podman image prune -f >/dev/null 2>&1 || true
echo "$IMAGE"
