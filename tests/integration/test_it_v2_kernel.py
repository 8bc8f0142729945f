"""cgroup v2 specifics on a real v2 kernel, with real runc containers (the qemu guest of
scripts/v2-guest.sh; deselected on v1 and hybrid hosts).

The guest has a unified hierarchy with memory, cpu, cpuset, io and pids enabled at the
root, PSI on, 256 MiB of swap with zswap in front, and two ext4 disks mounted at the
paths in CONTAINERFS_IT_DISKS.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cfs_harness import CGROUP_ROOT, CONTAINER_PYTHON, REPO_ROOT, parse_meminfo, scaled

from containerfs.inject.attach import served_views

pytestmark = [pytest.mark.integration, pytest.mark.v2kernel]

MiB = 1024 * 1024


def inject(mountpoint, pid):
    result = subprocess.run(
        [sys.executable, "-m", "containerfs", "inject", "--mountpoint", str(mountpoint), str(pid)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for_file(path, timeout=30):
    deadline = time.monotonic() + scaled(timeout)
    while not Path(path).exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def meminfo_of(container):
    rc, out, err = container.exec("cat", "/proc/meminfo")
    assert rc == 0, err
    return parse_meminfo(out)


def test_cgroup_namespace_shows_root_while_the_daemon_reads_the_host_path(containerfs_mount, runc_container):
    c = runc_container(memory=200 * MiB, cpu_quota=50000, cpus="0-1", views_from=containerfs_mount.mountpoint)
    rc, out, err = c.sh("cat /proc/self/cgroup; echo ==; free -b; echo ==; cat /sys/devices/system/cpu/online")
    assert rc == 0, err
    cgroup, free, online = out.split("==\n")
    assert cgroup == "0::/\n", cgroup  # runc's default on v2: a cgroup namespace
    assert os.readlink(f"/proc/{c.pid}/ns/cgroup") != os.readlink("/proc/self/ns/cgroup")
    # The daemon, in the host's cgroup namespace, reads the whole path.
    assert Path(f"/proc/{c.pid}/cgroup").read_text() == f"0::{c.cgroup_path}\n"
    mem = next(line.split() for line in free.splitlines() if line.startswith("Mem:"))
    assert int(mem[1]) == 200 * MiB, free
    assert online == "0\n", online  # 50000/100000: half a CPU shows as one


NESTED_INIT = r"""
set -e
cg=/sys/fs/cgroup
# v2 allows no processes in a cgroup that enables controllers for its children: the init
# moves to a leaf first, as systemd does with init.scope.
mkdir $cg/init $cg/work
echo $$ > $cg/init/cgroup.procs
echo "+memory +pids" > $cg/cgroup.subtree_control
sh -c 'echo $$ > /sys/fs/cgroup/work/cgroup.procs
       exec python3 -c "
b = bytearray(96 << 20)
b[::4096] = b\"1\" * (96 << 8)
open(\"/shared/hog\", \"w\").close()
import time; time.sleep(3600)"' &
while [ ! -e /shared/hog ]; do sleep 0.1; done
cat /proc/meminfo > /shared/meminfo.init
sh -c 'echo $$ > /sys/fs/cgroup/work/cgroup.procs; cat /proc/meminfo > /shared/meminfo.work'
touch /shared/ready
exec sleep 3600
"""


def test_processes_in_child_cgroups_of_their_own_see_the_whole_container(containerfs_mount, runc_container):
    """Nested delegation: init in /init, a 96 MiB process in /work; both read the container's figures."""
    c = runc_container(
        ["sh", "-c", NESTED_INIT], memory=256 * MiB, cgroup_rw=True, views_from=containerfs_mount.mountpoint
    )
    wait_for_file(c.shared / "ready", timeout=60)
    host_cgroup = CGROUP_ROOT / c.cgroup_path.lstrip("/")
    assert Path(f"/proc/{c.pid}/cgroup").read_text() == f"0::{c.cgroup_path}/init\n"
    current = int((host_cgroup / "memory.current").read_text())
    for reader in ("init", "work"):
        mi = parse_meminfo((c.shared / f"meminfo.{reader}").read_text())
        assert mi["MemTotal"] == 256 * 1024, (reader, mi)
        used_kb = mi["MemTotal"] - mi["MemFree"]
        # The whole container's usage, the hog in /work included: not /init's alone.
        assert 96 * 1024 <= used_kb <= current // 1024 + 16 * 1024, (reader, used_kb, current)


def test_cpu_max_max_and_an_inherited_cpuset(containerfs_mount, runc_container):
    """No quota (cpu.max `max`) and no cpuset of its own: cpuset.cpus.effective from the parent."""
    c = runc_container(cpus=None, views_from=containerfs_mount.mountpoint)
    host_cgroup = CGROUP_ROOT / c.cgroup_path.lstrip("/")
    assert (host_cgroup / "cpu.max").read_text().split()[0] == "max"
    _, out, _ = c.sh("cat /sys/devices/system/cpu/online")
    assert out == "0-1\n"  # every CPU of the guest
    parent = host_cgroup.parent
    (parent / "cpuset.cpus").write_text("1")
    assert (host_cgroup / "cpuset.cpus").read_text().strip() == ""
    assert (host_cgroup / "cpuset.cpus.effective").read_text().strip() == "1"
    deadline = time.monotonic() + scaled(5)  # limits are re-read once a second
    while c.sh("cat /sys/devices/system/cpu/online")[1] != "0\n":
        assert time.monotonic() < deadline, c.sh("cat /sys/devices/system/cpu/online")
        time.sleep(0.2)
    _, out, err = c.sh("grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat")
    assert out.split() == ["1", "1"], out + err


SWAPPER = r"""
import time
b = bytearray(112 << 20)  # beyond memory.max: about 48 MiB go to swap (zswap first)
for _ in range(3):
    b[::4096] = b"\x01" * (112 << 8)
open("/shared/swapped", "w").close()
time.sleep(3600)
"""


def test_swap_max_and_zswap(containerfs_mount, runc_container):
    """memory.swap.max is the container's SwapTotal; swap used (zswap included) shows as used."""
    c = runc_container(
        [CONTAINER_PYTHON, "-c", SWAPPER],
        memory=64 * MiB,
        memory_swap=64 * MiB + 96 * MiB,  # OCI swap is memory+swap: runc writes 96M to memory.swap.max
        views_from=containerfs_mount.mountpoint,
    )
    wait_for_file(c.shared / "swapped", timeout=120)
    host_cgroup = CGROUP_ROOT / c.cgroup_path.lstrip("/")
    assert int((host_cgroup / "memory.swap.max").read_text()) == 96 * MiB
    swap_current = int((host_cgroup / "memory.swap.current").read_text())
    assert swap_current >= 32 * MiB, swap_current
    mi = meminfo_of(c)
    assert mi["SwapTotal"] == 96 * 1024, mi
    used_kb = mi["SwapTotal"] - mi["SwapFree"]
    assert 32 * 1024 <= used_kb <= 96 * 1024, mi
    _, out, _ = c.exec("cat", "/proc/swaps")
    size, used = out.splitlines()[1].split()[2:4]
    assert int(size) == 96 * 1024 and abs(int(used) - used_kb) < 8192, (out, used_kb)
    stat = dict(line.split() for line in (host_cgroup / "memory.stat").read_text().splitlines())
    if Path("/sys/module/zswap/parameters/enabled").read_text().strip() == "Y":
        # zswap keeps compressed pages in the container's memory: meminfo shows them.
        assert int(stat["zswapped"]) > 0 and mi["Zswapped"] > 0, (mi, stat)


def test_io_stat_over_two_devices(containerfs_mount, runc_container):
    disks = os.environ.get("CONTAINERFS_IT_DISKS", "").split()
    assert len(disks) >= 2, "the guest mounts two disks (CONTAINERFS_IT_DISKS)"
    names = []
    for disk in disks[:2]:
        source = next(
            line.split()[0] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1] == disk
        )
        names.append(os.path.basename(source))
    c = runc_container(
        [
            "sh",
            "-c",
            "dd if=/dev/zero of=/d0/f bs=1M count=8 oflag=direct 2>/dev/null && "
            "dd if=/dev/zero of=/d1/f bs=1M count=4 oflag=direct 2>/dev/null && "
            "dd if=/d0/f of=/dev/null bs=1M iflag=direct 2>/dev/null && "
            "cat /proc/diskstats; rm -f /d0/f /d1/f",
        ],
        detach=False,
        rw_mounts=[(disks[0], "/d0"), (disks[1], "/d1")],
        views_from=containerfs_mount.mountpoint,
    )
    rc, out, err = c.result
    assert rc == 0, err
    lines = {fields[2]: [int(v) for v in fields[3:]] for fields in (line.split() for line in out.splitlines())}
    assert set(names) <= set(lines), out
    first, second = lines[names[0]], lines[names[1]]
    # counters: reads, merged, sectors read, ms, writes, merged, sectors written, ...
    assert first[6] >= 8 * MiB // 512 and second[6] >= 4 * MiB // 512, out
    assert first[2] >= 8 * MiB // 512 and second[2] < 8 * MiB // 512, out
    assert first[4] >= 1 and second[4] >= 1, out


HIGH_HOG = r"""
b = bytearray(160 << 20)
b[::4096] = b"\x01" * (160 << 8)
print("survived")
"""


def test_memory_max_not_memory_high_is_memtotal(containerfs_mount, runc_container):
    """memory.high 96M throttles but never kills: MemTotal is memory.max, and a process
    that goes past memory.high lives (its excess is reclaimed to swap)."""
    c = runc_container(
        memory=256 * MiB,
        memory_swap=512 * MiB,
        unified={"memory.high": str(96 * MiB)},
        views_from=containerfs_mount.mountpoint,
    )
    host_cgroup = CGROUP_ROOT / c.cgroup_path.lstrip("/")
    assert int((host_cgroup / "memory.high").read_text()) == 96 * MiB
    assert meminfo_of(c)["MemTotal"] == 256 * 1024
    rc, out, err = c.exec(CONTAINER_PYTHON, "-c", HIGH_HOG, timeout=300)
    assert (rc, out.strip()) == (0, "survived"), err
    mi = meminfo_of(c)
    assert mi["MemTotal"] == 256 * 1024 and 0 <= mi["MemFree"] <= mi["MemTotal"], mi


THREADED_INIT = r"""
set -e
cg=/sys/fs/cgroup
mkdir $cg/app
echo $$ > $cg/app/cgroup.procs
echo "+cpu +pids" > $cg/app/cgroup.subtree_control 2>/dev/null || true
mkdir $cg/app/t1 $cg/app/t2
echo threaded > $cg/app/t1/cgroup.type
echo threaded > $cg/app/t2/cgroup.type
exec python3 -c '
import os, threading, time
def spin(group):
    with open(f"/sys/fs/cgroup/app/{group}/cgroup.threads", "w") as f:
        f.write(str(threading.get_native_id()))
    end = time.monotonic() + 3600
    while time.monotonic() < end:
        pass
for group in ("t1", "t2"):
    threading.Thread(target=spin, args=(group,), daemon=True).start()
time.sleep(1)
open("/shared/ready", "w").close()
time.sleep(3600)
'
"""


def test_threaded_cgroups(containerfs_mount, runc_container):
    """Threads of one process in threaded sub-cgroups: all counted, and readers there resolve."""
    c = runc_container(
        ["sh", "-c", THREADED_INIT], memory=128 * MiB, cgroup_rw=True, views_from=containerfs_mount.mountpoint
    )
    wait_for_file(c.shared / "ready", timeout=60)
    app = CGROUP_ROOT / c.cgroup_path.lstrip("/") / "app"
    assert (app / "cgroup.type").read_text().strip() == "domain threaded"
    assert (app / "t1" / "cgroup.type").read_text().strip() == "threaded"
    assert len((app / "t1" / "cgroup.threads").read_text().split()) == 1
    # The loadavg sampler counts every thread of the container, threaded cgroups included:
    # the init's main thread and its two spinning threads (one runs at a time: the GIL).
    deadline = time.monotonic() + scaled(20)
    while True:
        rc, out, err = c.exec("cat", "/proc/loadavg")
        running, total = map(int, out.split()[3].split("/"))
        if (running >= 1 and total >= 3) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert 1 <= running <= total and total >= 3, out
    assert float(out.split()[0]) >= 0, out
    # A reader in a threaded cgroup reads the container's memory figures.
    rc, out, err = c.sh("echo $$ > /sys/fs/cgroup/app/cgroup.procs && head -1 /proc/meminfo")
    assert rc == 0, err
    assert out.split()[1] == str(128 * 1024), out


BUSY = r"""
import threading, time
b = bytearray(40 << 20)
def spin():
    while True:
        pass
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
# memory: 40 MiB rewritten again and again in a 32 MiB limit keeps the cgroup reclaiming
while True:
    b[::4096] = b"\x01" * (40 << 8)
"""


def pressure(container, resource):
    rc, out, err = container.exec("cat", f"/proc/pressure/{resource}")
    assert rc == 0, err
    some = dict(pair.split("=") for pair in out.splitlines()[0].split()[1:])
    return float(some["avg10"]), int(some["total"]), out


def test_pressure_of_a_busy_container_and_an_idle_one(containerfs_mount, runc_container):
    mp = containerfs_mount.mountpoint
    busy = runc_container(
        [CONTAINER_PYTHON, "-c", BUSY], name="busy", memory=32 * MiB, memory_swap=256 * MiB, cpu_quota=20000
    )
    idle = runc_container(name="idle", memory=64 * MiB)
    for c in (busy, idle):
        out = inject(mp, c.pid)
        assert f": {len(served_views(str(mp)))} attached" in out, out  # the pressure files too
    time.sleep(scaled(3))
    for resource in ("cpu", "memory"):
        host_cgroup = CGROUP_ROOT / busy.cgroup_path.lstrip("/")
        busy_avg, busy_total, text = pressure(busy, resource)
        idle_avg, idle_total, idle_text = pressure(idle, resource)
        own = (host_cgroup / f"{resource}.pressure").read_text()
        # Its own cgroup's file (read a moment apart: totals only grow).
        assert text.splitlines()[0].split()[0] == own.splitlines()[0].split()[0] == "some"
        assert busy_total >= int(own.split("total=")[1].split()[0]) * 0.5, (text, own)
        assert busy_total > 100_000 and busy_avg > 0.5, (resource, text)
        # ~0 beside the busy one: the idle container's own `cat` waits for a CPU the busy
        # one keeps busy, so a little stall shows there too.
        assert idle_avg < busy_avg / 2 and idle_total < busy_total // 10, (resource, idle_text, text)
    _, _, io_text = pressure(idle, "io")
    assert io_text.startswith("some avg10=") and "full avg10=" in io_text, io_text
