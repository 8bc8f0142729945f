#!/bin/sh
# Runs inside the v2 guest (scripts/v2-guest.sh): sets up the unified hierarchy, swap and
# the I/O disks, then the integration tests.  $1: the repository (read-only 9p), $2: the
# shared result directory.  Writes $2/pytest.log and $2/rc.
repo=$1
out=$2
echo 1 > "$out/rc"  # until pytest says otherwise
cd "$repo" || exit 1
echo "+memory +cpu +cpuset +io +pids" > /sys/fs/cgroup/cgroup.subtree_control
# /dev/vdc is swap with zswap in front, so memory.swap.* and zswap counters move.
mkswap /dev/vdc >/dev/null && swapon /dev/vdc
echo 1 > /sys/module/zswap/parameters/enabled 2>/dev/null
for disk in vda vdb; do mkfs.ext4 -q /dev/$disk && mkdir -p /run/$disk && mount /dev/$disk /run/$disk; done
# Unix sockets cannot live on 9p: tmp and every run dir are on the guest's /run (tmpfs);
# the repository is read-only here, so no byte code or pytest cache is written to it.
mkdir -p /run/cfs-it
# Everything here is several times slower than on the host: the harness stretches its timeouts.
export CONTAINERFS_IT_GUEST=1 CI=true TMPDIR=/run/cfs-it PYTHONDONTWRITEBYTECODE=1 CONTAINERFS_IT_SLOW=10 CONTAINERFS_IT_DISKS="/run/vda /run/vdb"
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < "$out/args"
[ $# -gt 0 ] || set -- tests/integration
.venv/bin/python -m pytest -p no:cacheprovider -ra --basetemp=/run/cfs-it/pytest \
    -c pyproject.toml --rootdir "$repo" "$@" > "$out/pytest.log" 2>&1
echo $? > "$out/rc"
