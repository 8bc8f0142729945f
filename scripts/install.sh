#!/bin/sh
# Install containerfs on a Debian/Ubuntu (apt) or RHEL/Fedora (dnf) host and mount it.
# Run as root from a checkout:  ./scripts/install.sh [MOUNTPOINT]
# Run it again after an update: it restarts the daemon, and containers get their views back.
# CONTAINERFS_OPTIONS: options for `containerfs mount` (default --watch: every container
# gets the views, as with the packaged systemd unit).
#
# It installs what the RPM installs, at the same paths, so the hook files work with either:
# /usr/bin/containerfs and /usr/bin/containerfs-runtime (here links into the virtualenv in
# /opt/containerfs), the OCI hook
# /usr/share/containers/oci/hooks.d/containerfs.json and the LXC hook
# /usr/share/containerfs/lxc-mount-hook.  Undo: `containerfs umount MOUNTPOINT`, then remove
# those four and /opt/containerfs.
set -eu
cd "$(dirname "$0")/.."
MOUNTPOINT=${1:-/var/lib/containerfs}
OPTIONS=${CONTAINERFS_OPTIONS---watch}
PREFIX=/opt/containerfs
BIN=/usr/bin/containerfs

if [ -e "$BIN" ] && [ "$(readlink "$BIN" || true)" != "$PREFIX/bin/containerfs" ]; then
    echo "install.sh: $BIN exists and is not from install.sh (the RPM?): use that install instead" >&2
    exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse3 python3 python3-venv python3-pip
elif command -v dnf >/dev/null 2>&1; then
    dnf install -y fuse3 fuse3-libs python3 python3-pip
else
    echo "install.sh: needs apt-get or dnf; install fuse3 and python3 (>= 3.9) by hand" >&2
    exit 1
fi

# A daemon from an earlier install: stop it before its files change under it.  umount
# waits until it has taken its views out of the containers and noted them, so that the
# new one puts them back.
if [ -x "$BIN" ] && awk -v m="$MOUNTPOINT" '$5 == m' /proc/self/mountinfo | grep -q ' - fuse.containerfs '; then
    echo "install.sh: stopping the daemon on $MOUNTPOINT"
    "$BIN" umount "$MOUNTPOINT"
fi

# A virtualenv keeps the daemon's dependencies apart from the distribution's Python.
python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
"$PREFIX/bin/pip" install -q .
ln -sfn "$PREFIX/bin/containerfs" "$BIN"
ln -sfn "$PREFIX/bin/containerfs-runtime" "$BIN-runtime"
# An earlier install.sh linked /usr/local/bin/containerfs, which PATH finds first.
if [ "$(readlink /usr/local/bin/containerfs || true)" = "$PREFIX/bin/containerfs" ]; then
    rm /usr/local/bin/containerfs
fi
install -D -m 0644 packaging/oci/containerfs.json /usr/share/containers/oci/hooks.d/containerfs.json
install -D -m 0755 packaging/lxc/containerfs-mount-hook /usr/share/containerfs/lxc-mount-hook

# shellcheck disable=SC2086  # OPTIONS holds several words
"$BIN" mount $OPTIONS "$MOUNTPOINT"
echo "containerfs is serving $MOUNTPOINT (options: ${OPTIONS:-none}):"
ls "$MOUNTPOINT/proc"
