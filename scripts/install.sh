#!/bin/sh
# Install containerfs on a Debian/Ubuntu (apt) or RHEL/Fedora (dnf) host and mount it.
# Run as root from a checkout:  ./scripts/install.sh [MOUNTPOINT]
# Run it again after an update: it restarts the daemon, and containers get their views back.
# CONTAINERFS_OPTIONS: options for `containerfs mount` (default --watch: every container
# gets the views, as with the packaged systemd unit).
set -eu
cd "$(dirname "$0")/.."
MOUNTPOINT=${1:-/var/lib/containerfs}
OPTIONS=${CONTAINERFS_OPTIONS---watch}
PREFIX=/opt/containerfs

if command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse3 python3 python3-venv python3-pip
elif command -v dnf >/dev/null 2>&1; then
    dnf install -y fuse3 fuse3-libs python3 python3-pip
else
    echo "install.sh: needs apt-get or dnf; install fuse3 and python3 (>= 3.9) by hand" >&2
    exit 1
fi

# A virtualenv keeps the daemon's dependencies apart from the distribution's Python.
python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
"$PREFIX/bin/pip" install -q .
ln -sf "$PREFIX/bin/containerfs" /usr/local/bin/containerfs
ln -sf "$PREFIX/bin/containerfs-runtime" /usr/local/bin/containerfs-runtime

# A daemon from an earlier install: stop it, and wait until it has taken its views out of
# the containers and noted them, so that the new one puts them back.
OLD=$(containerfs status --json --mountpoint "$MOUNTPOINT" 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["daemon"]["pid"])' 2>/dev/null || true)
if [ -n "$OLD" ]; then
    echo "install.sh: restarting the daemon (pid $OLD) on $MOUNTPOINT"
    containerfs umount "$MOUNTPOINT"
    while kill -0 "$OLD" 2>/dev/null; do sleep 0.1; done
fi

# shellcheck disable=SC2086  # OPTIONS holds several words
containerfs mount $OPTIONS "$MOUNTPOINT"
echo "containerfs is serving $MOUNTPOINT (options: ${OPTIONS:-none}):"
ls "$MOUNTPOINT/proc"
