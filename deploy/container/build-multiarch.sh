#!/bin/sh
# Builds the proctor image for linux/amd64 and linux/arm64 under one manifest
# list with Podman (Buildah underneath), offline: FROM scratch pulls nothing
# and the Containerfile runs nothing, so no emulation is needed for arm64.
#
#   build-multiarch.sh [--amd64 PATH] [--arm64 PATH] TAG
#
# The binaries default to target/release/proctor and
# target/cross/aarch64-unknown-linux-gnu/release/proctor of this repository (build
# the second with `cargo xtask build --target aarch64-unknown-linux-gnu`).
# TAG (e.g. localhost/proctor:dev) becomes a manifest list; push it with
# `podman manifest push --all TAG docker://REGISTRY/proctor:VERSION`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
amd64="$target/release/proctor"
arm64="$target/cross/aarch64-unknown-linux-gnu/release/proctor"
tag=

usage() {
    echo "usage: $0 [--amd64 PATH] [--arm64 PATH] TAG" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --amd64) [ $# -ge 2 ] || usage; amd64=$2; shift 2 ;;
        --arm64) [ $# -ge 2 ] || usage; arm64=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) [ -z "$tag" ] || usage; tag=$1; shift ;;
    esac
done
[ -n "$tag" ] || usage

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for bin in "$amd64" "$arm64"; do
    sh "$here/build-rootfs.sh" --binary "$bin" "$ctx"
done
for arch in amd64 arm64; do
    if [ ! -d "$ctx/rootfs-$arch" ]; then
        echo "$0: no $arch binary among $amd64 and $arm64" >&2
        exit 1
    fi
done

# A stale list under the same name would keep old images in it.
podman manifest rm "$tag" >/dev/null 2>&1 || true
podman manifest create "$tag"
for arch in amd64 arm64; do
    podman build --network none --layers=false --platform "linux/$arch" \
        --manifest "$tag" -f "$here/Containerfile" "$ctx"
done
podman manifest inspect "$tag"
