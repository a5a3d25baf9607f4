#!/bin/sh
# Assembles the build context of deploy/container/Containerfile:
# OUTDIR/rootfs-ARCH (amd64 or arm64, from the binary's ELF machine) holds the
# proctor binary at /usr/bin/proctor, the shared libraries it needs, and the
# empty directories the agent and the container runtime mount over. Run it
# once per architecture into the same OUTDIR for a multi-arch image
# (build-multiarch.sh does).
#
#   build-rootfs.sh [--binary PATH] [--no-strip] OUTDIR
#
# PATH defaults to target/release/proctor of this repository. A binary of the
# host's arch gets the libraries `ldd` lists (at the paths ldd prints); an
# arm64 binary on an amd64 host (cargo xtask build --target
# aarch64-unknown-linux-gnu) gets the libraries its ELF header names from
# Debian's cross libraries (/usr/aarch64-linux-gnu/lib, libc6-dev-arm64-cross),
# placed where Debian arm64 puts them. Debug info is stripped (symbols are
# kept, so backtraces still name functions) unless --no-strip is given or no
# `objcopy` is installed. OUTDIR/rootfs-ARCH is replaced.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary="$repo/target/release/proctor"
strip=yes
outdir=

usage() {
    echo "usage: $0 [--binary PATH] [--no-strip] OUTDIR" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
        --no-strip) strip=no; shift ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) [ -z "$outdir" ] || usage; outdir=$1; shift ;;
    esac
done
[ -n "$outdir" ] || usage

if [ ! -x "$binary" ]; then
    echo "$0: $binary is not an executable; build it first (cargo build --release -p proctor) or pass --binary" >&2
    exit 1
fi
if ! command -v readelf >/dev/null 2>&1; then
    echo "$0: readelf not found (Debian package binutils)" >&2
    exit 1
fi
machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
case "$machine" in
    *X86-64*) arch=amd64; gnu=x86_64-linux-gnu ;;
    *AArch64*) arch=arm64; gnu=aarch64-linux-gnu ;;
    *) echo "$0: $binary is built for '$machine'; images exist for amd64 and arm64" >&2; exit 1 ;;
esac
case "$(uname -m)" in
    x86_64) host=amd64 ;;
    aarch64) host=arm64 ;;
    *) host=other ;;
esac
if [ "$arch" = "$host" ] && ! command -v ldd >/dev/null 2>&1; then
    echo "$0: ldd not found (Debian package libc-bin)" >&2
    exit 1
fi

rootfs="$outdir/rootfs-$arch"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/bin"

# The host's objcopy reads only host binaries; the cross binutils
# (binutils-aarch64-linux-gnu, with gcc-aarch64-linux-gnu) read arm64's.
objcopy=objcopy
[ "$arch" = "$host" ] || objcopy=$gnu-objcopy
if [ "$strip" = yes ] && command -v "$objcopy" >/dev/null 2>&1; then
    "$objcopy" --strip-debug "$binary" "$rootfs/usr/bin/proctor"
else
    cp "$binary" "$rootfs/usr/bin/proctor"
fi
chmod 0755 "$rootfs/usr/bin/proctor"

if [ "$arch" != "$host" ]; then
    # A foreign binary: ldd cannot run it. Its ELF header names the loader
    # (PT_INTERP) and the libraries (NEEDED); the cross libraries supply them.
    cross=/usr/$gnu/lib
    interp=$(readelf -l -W "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    needed=$(readelf -d -W "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
    for name in $interp $needed; do
        src="$cross/$(basename "$name")"
        if [ ! -e "$src" ]; then
            echo "$0: $binary needs $name, not in $cross (apt-get install libc6-dev-$arch-cross)" >&2
            exit 1
        fi
        case "$name" in
            /*) dst=$name ;;
            *) dst=/lib/$gnu/$name ;;
        esac
        mkdir -p "$rootfs$(dirname "$dst")"
        cp -L "$src" "$rootfs$dst"
        echo "library: $dst"
    done
    ldd_out=
else
    # Every absolute path in ldd's output is a library or the loader. A
    # library ldd cannot find is an error: the image would not start.
    ldd_out=$(ldd "$binary" 2>&1) || true
fi
case "$ldd_out" in
    *"not a dynamic executable"*|*"statically linked"*) ldd_out= ;;
esac
if printf '%s\n' "$ldd_out" | grep -q "not found"; then
    echo "$0: ldd cannot resolve every library of $binary:" >&2
    printf '%s\n' "$ldd_out" >&2
    exit 1
fi
libs=$(printf '%s\n' "$ldd_out" | tr ' \t' '\n\n' | grep '^/' | sort -u) || true
for lib in $libs; do
    # Copy the file the path resolves to, under the path ldd printed (e.g. the
    # loader stays at /lib64/ld-linux-x86-64.so.2, the binary's PT_INTERP).
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
    echo "library: $lib"
done

# Mount points and writable places. The root file system is read-only in the
# DaemonSet; these are covered by volumes there.
for d in etc/proctor var/lib/proctor run/proctor tmp proc sys dev host; do
    mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp"

echo "rootfs: $rootfs ($(du -sh "$rootfs" | cut -f1))"
