#!/bin/sh
# Run the integration tests on a real cgroup v2 kernel: a qemu guest booted with
# virtme-ng from Debian's kernel, the host's root read-only over 9p.
#   ./scripts/v2-guest.sh [pytest args]     (default: the tests tests/v2guest/selection.txt names)
# Installs linux-image-amd64 and qemu-system-x86 (apt) and virtme-ng (pip, in its own
# venv .vng-venv) when missing.  Exits with the guest's pytest status; no result counts
# as a failure.  Software emulation only: /dev/kvm does not boot guests on these hosts.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)

# Debian's generic kernel (a cloud kernel lacks what the guest needs), with its modules.
if ! dpkg -s linux-image-amd64 >/dev/null 2>&1 || ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-image-amd64 qemu-system-x86
fi
kernel=$(ls /boot/vmlinuz-*-amd64 | grep -v -- -cloud- | sort -V | tail -n 1)
if [ ! -x .vng-venv/bin/vng ]; then
    python3 -m venv .vng-venv
    .vng-venv/bin/pip install -q virtme-ng
fi
[ -x .venv/bin/python ] || { echo "v2-guest: no .venv; run scripts/test.sh or make it first" >&2; exit 2; }

# The one writable directory the guest shares with us: results and disk images.
out=$(mktemp -d /tmp/containerfs-v2guest.XXXXXX)
trap 'rm -rf "$out"' EXIT
# Two disks for io.stat over several devices, a third for swap (zswap sits in front).
for disk in io1 io2 swap; do truncate -s 256M "$out/$disk.img"; done

: > "$out/args"
if [ $# -eq 0 ]; then
    grep -v -e "^#" -e "^$" tests/v2guest/selection.txt > "$out/args"
else
    printf "%s\n" "$@" > "$out/args"
fi
start=$(date +%s)
set +e
PATH="$repo/.vng-venv/bin:$PATH" timeout 1800 vng --run "$kernel" --disable-kvm --memory 2G --cpus 2 \
    --rwdir "$out" --disk "$out/io1.img" --disk "$out/io2.img" --disk "$out/swap.img" \
    --append psi=1 --exec "sh $repo/tests/v2guest/inside.sh $repo $out" >"$out/console.log" 2>&1
vng_rc=$?
set -e
end=$(date +%s)
cat "$out/pytest.log" 2>/dev/null || { echo "v2-guest: no pytest output; console:"; tail -n 80 "$out/console.log"; }
echo "v2-guest: guest run took $((end - start)) s (vng exit $vng_rc)"
rc=$(cat "$out/rc" 2>/dev/null || echo missing)
if [ "$rc" != 0 ]; then
    echo "v2-guest: FAILED (pytest exit status: $rc)" >&2
    [ "$rc" = missing ] && tail -n 40 "$out/console.log" >&2
    exit 1
fi
