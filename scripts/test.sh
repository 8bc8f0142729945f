#!/bin/sh
# Run the whole test suite (unit and integration) as root:  ./scripts/test.sh [pytest args]
# Installs what the integration tests drive: runc, lxcfs, fuse3, procps, sysstat, and rpm
# (rpmbuild, rpm2archive) for the RPM test, which runs the packaged code with the system python3;
# and the real engines test_it_engines.py starts itself (no systemd needed): docker.io,
# containerd, podman, crun, lxc, with busybox-static for its image.
# Then the integration tests again on a real cgroup v2 kernel in a qemu guest
# (scripts/v2-guest.sh), when run without pytest arguments (CI) or with V2_GUEST=1;
# V2_GUEST=0 leaves the guest out, except under CI=true.  Either run failing fails.
set -eu
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    need=""
    for tool in runc lxcfs fusermount3 iostat free rpmbuild rpm2archive \
        dockerd containerd ctr podman crun lxc-create busybox unshare; do
        command -v "$tool" >/dev/null 2>&1 || need=yes
    done
    if [ -n "$need" ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q runc lxcfs fuse3 sysstat procps python3-venv rpm \
            docker.io containerd podman crun lxc busybox-static util-linux
    fi
    # The packaged lxcfs service would mount /var/lib/lxcfs; the tests start their own.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet lxcfs 2>/dev/null; then
        systemctl stop lxcfs
    fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check containerfs tests benchmarks
.venv/bin/mypy
guest=${V2_GUEST:-}
[ -n "$guest" ] || { [ $# -eq 0 ] && guest=1 || guest=0; }
[ "${CI:-}" = true ] && [ $# -eq 0 ] && guest=1
set +e
.venv/bin/python -m pytest -ra "$@"
host_rc=$?
guest_rc=0
if [ "$guest" = 1 ]; then
    ./scripts/v2-guest.sh
    guest_rc=$?
fi
set -e
[ "$host_rc" = 0 ] || echo "test.sh: the host run failed (pytest exit status $host_rc)" >&2
[ "$guest_rc" = 0 ] || echo "test.sh: the cgroup v2 guest run failed" >&2
[ "$host_rc" = 0 ] && [ "$guest_rc" = 0 ]
