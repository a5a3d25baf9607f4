#!/bin/sh
# Reverses install.sh: stops and disables the service, removes the binary, the
# unit, the sysusers entry, and /etc/proctor/config.yaml if it is still the
# default config (an edited config is kept, and said so).
#
#   uninstall.sh [--purge]
#
# --purge also removes an edited config, the state directory /var/lib/proctor
# (inventory database and fingerprint key) and the proctor system user.
# Without it, the state and the user stay: the inventory and the node's
# fingerprint key survive a reinstall. With DESTDIR set, only files under
# $DESTDIR are touched. Idempotent: removing what is not there is not an error.
set -eu

DESTDIR=${DESTDIR:-}
purge=no
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) purge=yes; shift ;;
        *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
    esac
done

bin="$DESTDIR/usr/local/bin/proctor"
unit="$DESTDIR/etc/systemd/system/proctor.service"
sysusers="$DESTDIR/etc/sysusers.d/proctor.conf"
config="$DESTDIR/etc/proctor/config.yaml"
state="$DESTDIR/var/lib/proctor"

systemd_running=no
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemd_running=yes
    systemctl disable --now proctor.service 2>/dev/null || true
fi

# The config goes if it is the default one (judged by the binary still there).
if [ -e "$config" ]; then
    if [ "$purge" = yes ]; then
        rm -f "$config"
        echo "removed $config"
    elif [ -x "$bin" ] && "$bin" default-config | cmp -s - "$config"; then
        rm -f "$config"
        echo "removed $config (unchanged default)"
    else
        echo "kept $config (edited; --purge removes it)"
    fi
fi
rmdir "$DESTDIR/etc/proctor" 2>/dev/null || true

for f in "$bin" "$unit" "$sysusers"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        rm -f "$f"
        echo "removed $f"
    fi
done

if [ "$purge" = yes ]; then
    if [ -e "$state" ]; then
        rm -rf "$state"
        echo "removed $state"
    fi
    if [ -z "$DESTDIR" ] && getent passwd proctor >/dev/null 2>&1; then
        userdel proctor 2>/dev/null || true
        echo "removed system user proctor"
    fi
fi

# Under DESTDIR (a staging tree), prune the directories install.sh created
# once they are empty; on the real system only /etc/proctor went above.
if [ -n "$DESTDIR" ]; then
    for d in usr/local/bin etc/systemd/system etc/sysusers.d etc/proctor var/lib/proctor; do
        while [ "$d" != . ]; do
            if [ -d "$DESTDIR/$d" ]; then
                rmdir "$DESTDIR/$d" 2>/dev/null || break
            fi
            d=$(dirname "$d")
        done
    done
fi

if [ "$systemd_running" = yes ]; then
    systemctl daemon-reload
    systemctl reset-failed proctor.service 2>/dev/null || true
fi
