#!/bin/sh
# Assembles the build context of deploy/container/Containerfile: OUTDIR/rootfs
# holds the proctor binary at /usr/bin/proctor, the shared libraries `ldd`
# lists for it (at the paths ldd prints), and the empty directories the agent
# and the container runtime mount over.
#
#   build-rootfs.sh [--binary PATH] [--no-strip] OUTDIR
#
# PATH defaults to target/release/proctor of this repository. Debug info is
# stripped (symbols are kept, so backtraces still name functions) unless
# --no-strip is given or no `objcopy` is installed. OUTDIR/rootfs is replaced.
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
if ! command -v ldd >/dev/null 2>&1; then
    echo "$0: ldd not found (Debian package libc-bin)" >&2
    exit 1
fi

rootfs="$outdir/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/bin"

if [ "$strip" = yes ] && command -v objcopy >/dev/null 2>&1; then
    objcopy --strip-debug "$binary" "$rootfs/usr/bin/proctor"
else
    cp "$binary" "$rootfs/usr/bin/proctor"
fi
chmod 0755 "$rootfs/usr/bin/proctor"

# Every absolute path in ldd's output is a library or the loader. A library
# ldd cannot find is an error: the image would not start.
ldd_out=$(ldd "$binary" 2>&1) || true
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
