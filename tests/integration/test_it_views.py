"""View semantics observed from real containers: freshness, load, sub-cgroups, host, lxcfs."""

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from cfs_harness import CONTAINER_PYTHON, cgroup_v2, expected_swap_kb, host_meminfo, parse_meminfo

pytestmark = pytest.mark.integration

MiB = 1024 * 1024

OFFSET0_SCRIPT = r"""
import json, os, re
MiB = 1024 * 1024
def memfree(text):
    return int(re.search(r"^MemFree:\s+(\d+) kB$", text, re.M).group(1))
def read_from_0(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    parts = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(parts).decode()
        parts.append(b)
fd = os.open("/proc/meminfo", os.O_RDONLY)      # opened once, re-read on the same fd
before = read_from_0(fd)
buf = bytearray(64 * MiB)
for i in range(0, len(buf), 4096):
    buf[i] = 1                                  # touch every page
after_alloc = read_from_0(fd)
del buf
after_free = os.pread(fd, 1 << 20, 0).decode()  # pread at offset 0, as top does
os.lseek(fd, 0, os.SEEK_SET)
chunks = []
while True:
    b = os.read(fd, 7)
    if not b:
        break
    chunks.append(b)
print(json.dumps({"before": memfree(before), "after_alloc": memfree(after_alloc),
                  "after_free": memfree(after_free), "chunk_sizes": [len(c) for c in chunks],
                  "chunked": b"".join(chunks).decode()}))
"""


def test_meminfo_offset0_reread_is_fresh(containerfs_mount, runc_container):
    rc, out, err = runc_container.one_shot(
        [CONTAINER_PYTHON, "-c", OFFSET0_SCRIPT], memory=256 * MiB, views_from=containerfs_mount.mountpoint
    )
    assert rc == 0, err
    r = json.loads(out)
    # 64 MiB touched: MemFree (kB) drops by >= ~50 MiB on the re-read at offset 0 ...
    assert r["before"] - r["after_alloc"] >= 50 * 1024, r
    # ... and comes back once the buffer is freed (pread at offset 0).
    assert r["after_free"] - r["after_alloc"] >= 50 * 1024, {k: r[k] for k in ("before", "after_alloc", "after_free")}
    # 7-byte reads: many chunks whose concatenation is one consistent, parseable file.
    assert len(r["chunk_sizes"]) > 10 and max(r["chunk_sizes"]) <= 7, r["chunk_sizes"]
    text = r["chunked"]
    assert text.endswith("\n"), text
    for line in text.splitlines():
        assert re.fullmatch(r"[A-Za-z0-9_()]+:\s+\d+( kB)?", line), repr(line)
    mi = parse_meminfo(text)
    assert mi["MemTotal"] == 262144, text
    assert 0 <= mi["MemFree"] <= mi["MemTotal"], text
    assert 0 <= mi["MemAvailable"] <= mi["MemTotal"], text


def _loadavg(container):
    rc, out, err = container.exec("cat", "/proc/loadavg")
    assert rc == 0, err
    fields = out.split()
    assert len(fields) == 5, out
    m = re.fullmatch(r"(\d+)/(\d+)", fields[3])
    assert m, out
    return [float(f) for f in fields[:3]], int(m.group(1)), int(m.group(2)), int(fields[4]), out


def test_loadavg_busy_vs_idle(containerfs_mount, runc_container):
    mp = containerfs_mount.mountpoint
    busy = runc_container.create(
        ["sh", "-c", "while :; do :; done & while :; do :; done"], name="busy", cpus="0-1", views_from=mp
    )
    idle = runc_container.create(name="idle", views_from=mp)
    # first reads (a daemon may start tracking a container on its first loadavg read)
    _loadavg(busy)
    _loadavg(idle)
    time.sleep(13)
    (b1, b5, b15), b_run, b_total, b_last, b_out = _loadavg(busy)
    (i1, i5, i15), i_run, i_total, i_last, i_out = _loadavg(idle)
    host_total = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    assert b1 > 0.2, b_out
    assert b1 >= b5 >= b15 >= 0, b_out
    # busy: sh + subshell looping (+ the reader); the task count is the container's, not the host's
    assert 1 <= b_run <= b_total and 2 <= b_total <= 10 and b_total < host_total, b_out
    assert i1 == 0.0 and i5 == 0.0 and i15 == 0.0, i_out
    assert 0 <= i_run <= i_total and 1 <= i_total <= 5, i_out
    assert b_last > 0 and i_last > 0, (b_out, i_out)


def test_subcgroup_process_sees_container_limit(containerfs_mount, runc_container):
    c = runc_container.create(memory=256 * MiB, views_from=containerfs_mount.mountpoint)
    dirs = c.cgroup_dirs()
    assert Path("/sys/fs/cgroup/memory" if not cgroup_v2() else "/sys/fs/cgroup") in dirs, dirs
    subs = []
    pid = None
    try:
        for hier, cg in dirs.items():
            sub = cg / "sub"
            sub.mkdir()
            subs.append(sub)
            if hier.name == "cpuset":  # v1 cpuset children start empty
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (sub / f).write_text((cg / f).read_text())
            if hier.name == "memory":  # a larger own limit: the container's must still win
                (sub / "memory.limit_in_bytes").write_text(str(512 * MiB))
            # v2: runc enables no controllers below the container, so sub has no limit
            # files; with the cgroup namespace the reader sees itself at "0::/sub".
        pid = c.exec_detached(
            "/bin/sh",
            "-c",
            "while [ ! -e /shared/go ]; do sleep 0.05; done; "
            "cat /proc/self/cgroup > /shared/cgroup; "
            "cat /proc/meminfo > /shared/meminfo; touch /shared/done",
        )
        for sub in subs:
            (sub / "cgroup.procs").write_text(str(pid))
        (c.shared / "go").touch()
        deadline = time.monotonic() + 15
        while not (c.shared / "done").exists():
            assert time.monotonic() < deadline, "sub-cgroup reader did not finish"
            time.sleep(0.05)
        cgroups = (c.shared / "cgroup").read_text()
        if cgroup_v2():
            assert cgroups == "0::/sub\n", cgroups
        else:
            mem_line = next(line for line in cgroups.splitlines() if ":memory:" in line)
            assert mem_line.endswith(c.cgroup_path + "/sub"), cgroups
        mi = parse_meminfo((c.shared / "meminfo").read_text())
        assert mi["MemTotal"] == 262144, mi
        assert 0 <= mi["MemFree"] <= mi["MemTotal"], mi
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        for sub in reversed(subs):
            while sub.exists():
                try:
                    sub.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def test_host_reader_sees_host_values(containerfs_mount):
    view = parse_meminfo(containerfs_mount.path("proc/meminfo").read_text())
    host = host_meminfo()
    assert view["MemTotal"] == host["MemTotal"], view
    assert view["SwapTotal"] == host["SwapTotal"], view
    assert 0 <= view["SwapFree"] <= view["SwapTotal"], view  # lxcfs 5.0.3 wraps around here
    assert all(v < 2**60 for v in view.values()), view
    host_cpus = len(re.findall(r"^processor\s*:", Path("/proc/cpuinfo").read_text(), re.M))
    view_cpuinfo = containerfs_mount.path("proc/cpuinfo").read_text()
    assert len(re.findall(r"^processor\s*:", view_cpuinfo, re.M)) == host_cpus
    assert (
        containerfs_mount.path("sys/devices/system/cpu/online").read_text()
        == Path("/sys/devices/system/cpu/online").read_text()
    )


LXCFS_COMPARE_SCRIPT = r"""
import json, re
def meminfo(p):
    return {l.split(":")[0]: int(l.split()[1]) for l in open(p) if l.strip()}
def nproc(p):
    return len(re.findall(r"^processor\s*:", open(p).read(), re.M))
def swaps(p):
    return [int(l.split()[2]) for l in open(p).read().splitlines()[1:] if l.strip()]
def statcpus(p):
    return len(re.findall(r"^cpu\d+ ", open(p).read(), re.M))
out = {}
for name, base, online in (("containerfs", "/proc", "/sys/devices/system/cpu/online"),
                           ("lxcfs", "/mnt/lxcfs", "/mnt/lxcfs/online")):
    mi = meminfo(base + "/meminfo")
    out[name] = {"MemTotal": mi["MemTotal"], "MemFree": mi["MemFree"],
                 "SwapTotal": mi["SwapTotal"], "SwapFree": mi["SwapFree"],
                 "cpuinfo_processors": nproc(base + "/cpuinfo"),
                 "stat_cpus": statcpus(base + "/stat"),
                 "online": open(online).read().strip(), "swaps_sizes": swaps(base + "/swaps"),
                 "Mlocked": mi.get("Mlocked"),
                 "diskstats_lines": len(open(base + "/diskstats").read().splitlines()),
                 "uptime_s": float(open(base + "/uptime").read().split()[0])}
print(json.dumps(out))
"""


def test_compare_with_lxcfs(containerfs_mount, lxcfs_mount, runc_container):
    """Same container, both views.  Equal where lxcfs is right (MemTotal, CPU count, online).

    The table is printed (pytest -s, or on failure).  Known lxcfs 5.0.3 differences seen
    on the development machines (documented, not asserted):
    - diskstats: lxcfs serves the host's whole file (all host devices, host counters) when
      the obsolete blkio.io_* files are absent, so iostat in a seconds-old container shows
      absurd rates; containerfs lists only devices with cgroup I/O (none here).
    - Mlocked: lxcfs copies the host's value into the container's meminfo.
    - SwapFree for host readers: lxcfs wraps around (18446744073709551364 kB) on a
      host without swap (see test_host_reader_sees_host_values for the containerfs side).
    - Swap: with a swapless host both show 0; lxcfs 5.0.3 also caps at the host's swap.
    """
    memory, memsw = 256 * MiB, 512 * MiB
    lx = lxcfs_mount.mountpoint
    extra = [
        (lx / "proc" / f, f"/mnt/lxcfs/{f}") for f in ("meminfo", "cpuinfo", "stat", "swaps", "diskstats", "uptime")
    ]
    extra.append((lx / "sys/devices/system/cpu/online", "/mnt/lxcfs/online"))
    rc, out, err = runc_container.one_shot(
        [CONTAINER_PYTHON, "-c", LXCFS_COMPARE_SCRIPT],
        memory=memory,
        memory_swap=memsw,
        cpu_quota=50000,
        cpus="0-1",
        views_from=containerfs_mount.mountpoint,
        extra_mounts=extra,
    )
    assert rc == 0, err
    r = json.loads(out)
    cfs, lxc = r["containerfs"], r["lxcfs"]
    print("\ncontainerfs vs lxcfs:")
    for k in cfs:
        print(f"  {k:20} {cfs[k]!s:24} {lxc[k]!s:24} {'' if cfs[k] == lxc[k] else '<- differs'}")
    assert cfs["MemTotal"] == lxc["MemTotal"] == 262144, r
    assert cfs["cpuinfo_processors"] == lxc["cpuinfo_processors"] == 1, r
    assert cfs["online"] == lxc["online"] == "0", r
    assert cfs["stat_cpus"] == 1, r
    # swap: containerfs = memsw - memory, capped by the host's swap
    assert cfs["SwapTotal"] == expected_swap_kb(memory, memsw), r
    assert 0 <= cfs["SwapFree"] <= cfs["SwapTotal"], r
    assert sum(cfs["swaps_sizes"]) == cfs["SwapTotal"], r
    assert 0 <= cfs["uptime_s"] < 60, r


def test_container_stat_and_meminfo_sane(containerfs_mount, runc_container):
    """/proc/stat of a container: monotonic per-CPU counters across re-reads on one fd."""
    script = r"""
import os, time
fd = os.open("/proc/stat", os.O_RDONLY)
snaps = []
for _ in range(5):
    snaps.append(os.pread(fd, 1 << 20, 0).decode())
    time.sleep(0.2)
bad = []
prev = None
for s in snaps:
    cur = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in s.splitlines()
           if l.startswith("cpu")}
    if prev:
        for k, v in cur.items():
            if k in prev and any(a < b for a, b in zip(v, prev[k])):
                bad.append((k, prev[k], v))
    prev = cur
print(len(prev), bad)
"""
    rc, out, err = runc_container.one_shot(
        ["sh", "-c", f"(while :; do :; done) & {CONTAINER_PYTHON} -c '{script}'; kill $!"],
        cpu_quota=200000,
        views_from=containerfs_mount.mountpoint,
    )
    assert rc == 0, err
    assert out.strip() == "3 []", out  # "cpu" + cpu0 + cpu1, never going backwards
