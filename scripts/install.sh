#!/bin/sh
# Install containerfs on a Debian/Ubuntu (apt) or RHEL/Fedora (dnf) host and mount it.
# Run as root from a checkout:  ./scripts/install.sh [MOUNTPOINT]
set -eu
cd "$(dirname "$0")/.."
MOUNTPOINT=${1:-/var/lib/containerfs}
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

containerfs mount "$MOUNTPOINT"
echo "containerfs is serving $MOUNTPOINT:"
ls "$MOUNTPOINT/proc"
