#!/bin/sh
# Build the containerfs binary RPM from this checkout:  packaging/rpm/build-rpm.sh OUTDIR
# Writes OUTDIR/containerfs-VERSION-RELEASE.noarch.rpm and leaves nothing else behind.
#
# Needs rpmbuild (RHEL/Fedora: dnf install rpm-build python3-devel python3-pip systemd-rpm-macros;
# Debian/Ubuntu: apt-get install rpm) and pip access to the package index (or its cache,
# or PIP_FIND_LINKS with PIP_NO_INDEX=1) for setuptools.
# The RPM is for the build host's python3 version (it requires python(abi) = that
# version): build on the release it is for, e.g. in a ubi9 container for RHEL 9.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if ! command -v rpmbuild >/dev/null 2>&1; then
    echo "build-rpm.sh: rpmbuild not found; install it: apt-get install rpm (Debian/Ubuntu)" \
        "or dnf install rpm-build (RHEL/Fedora)" >&2
    exit 1
fi
PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
WORK=$(mktemp -d "$OUTDIR/.rpmbuild.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/SOURCES" "$WORK/src"

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/containerfs/__init__.py")
if [ -z "$VERSION" ]; then
    echo "build-rpm.sh: no __version__ in $REPO/containerfs/__init__.py" >&2
    exit 1
fi

# The wheel is built from a copy of what setup.py reads, so the checkout gets no build/ or
# egg-info and uncommitted changes are packaged as they are.
cp -R "$REPO/setup.py" "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/containerfs" "$WORK/src/"
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WORK/SOURCES" "$WORK/src"

cp "$REPO/packaging/rpm/containerfs-launcher" \
    "$REPO/packaging/systemd/containerfs.service" \
    "$REPO/packaging/systemd/containerfs.sysconfig" \
    "$REPO/packaging/oci/containerfs.json" \
    "$REPO/packaging/lxc/containerfs-mount-hook" \
    "$REPO/README.md" \
    "$WORK/SOURCES/"

# On a host whose rpm database does not hold its own packages (Debian), the BuildRequires
# cannot be checked.
nodeps=
rpm -q rpm >/dev/null 2>&1 || nodeps=--nodeps

# HOME points into WORK so that no ~/.rpmmacros changes the result.
HOME=$WORK rpmbuild -bb --quiet $nodeps \
    --define "_topdir $WORK" \
    --define "_tmppath $WORK/tmp" \
    --define "_rpmdir $OUTDIR" \
    --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
    --define "containerfs_version $VERSION" \
    "$REPO/packaging/rpm/containerfs.spec"
ls "$OUTDIR/containerfs-$VERSION-"*.noarch.rpm
