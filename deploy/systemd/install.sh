#!/bin/sh
# Installs proctor as a systemd service:
#   /usr/local/bin/proctor                   the binary
#   /etc/systemd/system/proctor.service      the unit (hardened; see its comments)
#   /etc/sysusers.d/proctor.conf             the "proctor" system user
#   /etc/proctor/config.yaml                 `proctor default-config`, only if absent
#
#   install.sh [--binary PATH]
#
# PATH defaults to target/release/proctor of this repository. With DESTDIR set,
# files go under $DESTDIR and nothing touches the running system (no user is
# created, systemd is not reloaded). Idempotent: a second run replaces the
# binary and the unit, and never overwrites an existing config.
# It does not start the service: `systemctl enable --now proctor` does.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary="$repo/target/release/proctor"
DESTDIR=${DESTDIR:-}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary)
            [ $# -ge 2 ] || { echo "usage: $0 [--binary PATH]" >&2; exit 2; }
            binary=$2; shift 2 ;;
        *) echo "usage: $0 [--binary PATH]" >&2; exit 2 ;;
    esac
done

if [ ! -x "$binary" ]; then
    echo "$0: $binary is not an executable; build it first (cargo build --release -p proctor) or pass --binary" >&2
    exit 1
fi

bin="$DESTDIR/usr/local/bin/proctor"
unit="$DESTDIR/etc/systemd/system/proctor.service"
sysusers="$DESTDIR/etc/sysusers.d/proctor.conf"
config="$DESTDIR/etc/proctor/config.yaml"

# Copy to a temporary name and rename: a running agent keeps its old binary.
mkdir -p "$(dirname "$bin")"
cp "$binary" "$bin.new"
chmod 0755 "$bin.new"
mv -f "$bin.new" "$bin"
echo "installed $bin"

install -D -m 0644 "$here/proctor.service" "$unit"
echo "installed $unit"
install -D -m 0644 "$here/proctor.sysusers" "$sysusers"
echo "installed $sysusers"

if [ -e "$config" ]; then
    echo "kept existing $config"
else
    mkdir -p "$(dirname "$config")"
    # Readable by root only: it may hold an inline fingerprint key. The agent
    # (user proctor) reads it through CAP_DAC_READ_SEARCH.
    tmp="$config.new"
    "$bin" default-config > "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$config"
    echo "installed $config (proctor default-config)"
fi

if [ -n "$DESTDIR" ]; then
    echo "DESTDIR set: no user created, systemd not reloaded"
    exit 0
fi

if ! getent passwd proctor >/dev/null 2>&1; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$sysusers"
    else
        useradd --system --user-group --no-create-home --home-dir /var/lib/proctor \
            --shell /usr/sbin/nologin --comment "proctor eBPF agent" proctor
    fi
    echo "created system user proctor"
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "systemd reloaded; start with: systemctl enable --now proctor"
else
    echo "systemd is not running here: unit installed, not loaded"
fi
