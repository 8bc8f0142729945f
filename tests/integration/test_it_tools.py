"""Real procps/sysstat tools inside real runc containers reading containerfs views."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cfs_harness import PREFIX, REPO_ROOT, SESSION, expected_swap_kb, parse_meminfo

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
PAGE = 4096


def _ok(result):
    rc, out, err = result
    assert rc == 0, f"rc={rc}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def test_free_memory_total(containerfs_mount, runc_container):
    out = _ok(runc_container.one_shot(["free", "-b"], memory=256 * MiB, views_from=containerfs_mount.mountpoint))
    mem = next(line for line in out.splitlines() if line.startswith("Mem:")).split()
    total, used, free = int(mem[1]), int(mem[2]), int(mem[3])
    # MemTotal is in kB: equal to the limit within a page.
    assert abs(total - 256 * MiB) < PAGE, out
    assert 0 <= used <= total and 0 <= free <= total, out
    available = int(mem[6])
    assert 0 <= available <= total, out


def test_free_swap_line(containerfs_mount, runc_container):
    """memory.swap (v1: memsw = memory + swap) shows as the swap part, capped by host swap."""
    memory, memsw = 256 * MiB, 512 * MiB
    rc, out, err = runc_container.one_shot(
        ["sh", "-c", "free -b && echo === && cat /proc/meminfo && echo === && cat /proc/swaps"],
        memory=memory,
        memory_swap=memsw,
        views_from=containerfs_mount.mountpoint,
    )
    assert rc == 0, err
    free_out, meminfo_txt, swaps_txt = out.split("===\n")
    expected_kb = expected_swap_kb(memory, memsw)
    swap = next(line for line in free_out.splitlines() if line.startswith("Swap:")).split()
    s_total, s_used, s_free = int(swap[1]), int(swap[2]), int(swap[3])
    assert s_total == expected_kb * 1024, (expected_kb, free_out)
    assert 0 <= s_used <= s_total and 0 <= s_free <= s_total, free_out
    assert s_used + s_free == s_total, free_out
    mi = parse_meminfo(meminfo_txt)
    assert mi["SwapTotal"] == expected_kb, meminfo_txt
    assert 0 <= mi["SwapFree"] <= mi["SwapTotal"], meminfo_txt  # no underflow
    lines = swaps_txt.splitlines()
    assert lines and lines[0].split()[0] == "Filename", swaps_txt
    sizes = [int(line.split()[2]) for line in lines[1:] if line.strip()]
    assert sum(sizes) == expected_kb, swaps_txt


def test_top_header(containerfs_mount, runc_container):
    out = _ok(
        runc_container.one_shot(
            ["sh", "-c", "top -bn1 | head -n 6; echo ===; top -bn2 -d 0.3 | grep '^%Cpu'"],
            memory=256 * MiB,
            cpu_quota=200000,
            views_from=containerfs_mount.mountpoint,
        )
    )
    frame, cpu_lines = out.split("===\n")
    assert re.search(r"^top - .* up ", frame, re.M), frame
    m = re.search(r"^Tasks:\s+(\d+) total,\s+(\d+) running", frame, re.M)
    assert m, frame
    assert 1 <= int(m.group(1)) < 50 and int(m.group(2)) <= int(m.group(1)), frame
    m = re.search(r"^MiB Mem\s*:\s*([\d.]+) total,\s*([\d.]+) free,\s*([\d.]+) used", frame, re.M)
    assert m, frame
    assert float(m.group(1)) == pytest.approx(256.0, abs=0.05), frame
    assert float(m.group(2)) <= float(m.group(1)), frame
    assert re.search(r"^MiB Swap:", frame, re.M), frame
    cpu = [line for line in frame.splitlines() if line.startswith("%Cpu")]
    assert cpu, frame
    # Both frames of top -n2 (the second one is a delta of /proc/stat re-read on the same
    # fd) must carry percentages in [0, 100]: counters going backwards print garbage.
    frames = cpu_lines.strip().splitlines()
    assert len(frames) == 2, cpu_lines
    for line in frames:
        values = [float(v) for v in re.findall(r"(-?[\d.]+)\s+(?:us|sy|ni|id|wa|hi|si|st)", line)]
        assert len(values) == 8, line
        assert all(0.0 <= v <= 100.0 for v in values), line
        assert sum(values) == pytest.approx(100.0, abs=1.5), line


@pytest.mark.parametrize(
    "quota,cpus,expected",
    [
        (50000, "0-1", 1),
        (200000, "0-1", 2),
        (None, "1", 1),
    ],
    ids=["quota-half-cpu", "quota-two-cpus", "cpuset-cpu1-only"],
)
def test_cpu_count_views_agree(containerfs_mount, runc_container, quota, cpus, expected):
    script = (
        "grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; "
        "grep -c '^cpu[0-9]' /proc/stat; grep '^processor' /proc/cpuinfo; "
        "grep '^cpu[0-9]' /proc/stat | cut -d' ' -f1"
    )
    out = _ok(
        runc_container.one_shot(
            ["sh", "-c", script], cpu_quota=quota, cpus=cpus, views_from=containerfs_mount.mountpoint
        )
    )
    lines = out.splitlines()
    n_cpuinfo, online, n_stat = int(lines[0]), lines[1].strip(), int(lines[2])
    assert n_cpuinfo == expected, out
    assert online == ("0" if expected == 1 else f"0-{expected - 1}"), out
    assert n_stat == expected, out
    # one numbering for all views: processor 0..N-1 and cpu0..cpuN-1
    procs = [int(line.split(":")[1]) for line in lines[3 : 3 + expected]]
    assert procs == list(range(expected)), out
    assert lines[3 + expected :] == [f"cpu{i}" for i in range(expected)], out


def test_uptime_fresh_container(containerfs_mount, runc_container):
    c = runc_container.create(views_from=containerfs_mount.mountpoint)
    started = time.monotonic()
    time.sleep(1.5)
    rc, out, err = c.exec("uptime")
    assert rc == 0, err
    assert re.search(r"\bup\s+0 min\b", out), out
    rc, out, err = c.exec("cat", "/proc/uptime")
    assert rc == 0, err
    up, idle = (float(v) for v in out.split())
    elapsed = time.monotonic() - started
    assert 1.0 <= up < 60, out
    assert up <= elapsed + 5, (out, elapsed)
    assert idle >= 0, out


def test_iostat_device_and_cpu_sections(containerfs_mount, runc_container):
    out = _ok(
        runc_container.one_shot(
            ["sh", "-c", "iostat -d && echo === && iostat -c && echo === && iostat -c 1 2"],
            cpu_quota=200000,
            views_from=containerfs_mount.mountpoint,
        )
    )
    dev, cpu, cpu_interval = out.split("===\n")
    dev_lines = dev.splitlines()
    hdr = [i for i, line in enumerate(dev_lines) if line.startswith("Device")]
    assert hdr, dev
    for line in dev_lines[hdr[0] + 1 :]:
        if line.strip():
            fields = line.split()
            assert all(re.fullmatch(r"[\d.]+", f) for f in fields[1:]), line
    reports = []
    for section in (cpu, cpu_interval):
        rows = section.splitlines()
        idx = [i for i, line in enumerate(rows) if line.startswith("avg-cpu:")]
        assert idx, section
        for i in idx:
            assert rows[i].split()[1:] == ["%user", "%nice", "%system", "%iowait", "%steal", "%idle"], section
            values = [float(v) for v in rows[i + 1].split()]
            assert len(values) == 6, section
            assert all(0.0 <= v <= 100.0 for v in values), section
            reports.append(values)
    assert len(reports) == 3, out
    # The since-boot reports may be all zero for a brand-new container; the 1 s interval
    # report is a delta of two /proc/stat reads and must add up to 100 %.
    for values in reports[:2]:
        assert sum(values) == pytest.approx(100.0, abs=1.0) or sum(values) == 0, out
    assert sum(reports[2]) == pytest.approx(100.0, abs=1.0), out


def test_no_cpu_quota_option_shows_cpuset(start_containerfs, runc_container):
    """--no-cpu-quota: the CPU count follows the cpuset only (quota 0.5 CPU still shows 2)."""
    d = start_containerfs("--no-cpu-quota")
    out = _ok(
        runc_container.one_shot(
            ["sh", "-c", "grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online"],
            cpu_quota=50000,
            cpus="0-1",
            views_from=d.mountpoint,
        )
    )
    assert out.split() == ["2", "0-1"], out


def _disk_of(path):
    """(major, minor, name) of the whole disk holding path (throttle rules take disks)."""
    dev = os.stat(path).st_dev
    sysdir = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve()
    if (sysdir / "partition").exists():
        sysdir = sysdir.parent
    major, minor = (int(v) for v in (sysdir / "dev").read_text().split(":"))
    return major, minor, sysdir.name


def test_diskstats_and_iostat_show_the_containers_own_io(containerfs_mount, runc_container):
    """v1 throttle counters count once a rule exists: the container's reads, not the host's."""
    major, minor, name = _disk_of("/usr/bin")
    payload = os.path.realpath("/usr/bin/python3")
    size = os.path.getsize(payload)
    rule = {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 10**10}]}
    out = _ok(
        runc_container.one_shot(
            [
                "sh",
                "-c",
                f"dd if={payload} of=/dev/null bs=1M iflag=direct 2>/dev/null; "
                "cat /proc/diskstats; echo ===; iostat -d",
            ],
            block_io=rule,
            views_from=containerfs_mount.mountpoint,
        )
    )
    diskstats, iostat = out.split("===\n")
    lines = [line.split() for line in diskstats.splitlines()]
    assert [fields[2] for fields in lines] == [name], diskstats  # only the disk it read from
    fields = lines[0]
    reads, sectors_read, writes = int(fields[3]), int(fields[5]), int(fields[7])
    host = next(line.split() for line in Path("/proc/diskstats").read_text().splitlines() if line.split()[2] == name)
    # O_DIRECT reads of the whole file, counted by the container's cgroup only
    assert size // 512 <= sectors_read < size // 512 + 2048, diskstats
    assert 1 <= reads < int(host[3]) and writes == 0, (diskstats, host)
    assert any(line.split()[:1] == [name] for line in iostat.splitlines()), iostat


# --------------------------------------------------------------------------------------------
# iostat, vmstat, sar, lscpu, getconf, nproc on a loop device the container writes to (issue 11)


@pytest.fixture
def loop_device(tmp_path):
    """A loop device backed by a file in tmp_path, detached afterwards.

    The container writes to the device node itself: a filesystem mounted on the host
    would be copied into every mount namespace created meanwhile and keep the device busy.
    """
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(128 * MiB)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    try:
        st = os.stat(dev)
        yield dev, os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
        # A device still open (udev probing it) is detached when closed: wait for that.
        deadline = time.monotonic() + 30
        while left := subprocess.run(["losetup", "-j", str(backing)], capture_output=True, text=True).stdout.strip():
            assert time.monotonic() < deadline, f"loop device still attached: {left}"
            time.sleep(0.2)


def _hook(mountpoint, log):
    argv = [sys.executable, "-m", "containerfs", "oci-hook", "--mountpoint", str(mountpoint), "--log-file", str(log)]
    return {"path": sys.executable, "args": argv, "env": [f"PYTHONPATH={REPO_ROOT}"]}


def _sections(out):
    return dict(part.split("\n", 1) for part in out.split("=== ")[1:])


WRITE_8M = "(sleep 0.3; dd if=/dev/zero of={} bs=1M count=8 seek={} oflag=direct 2>/dev/null) & "


def test_io_vm_and_cpu_tools_show_the_container(loop_device, containerfs_mount, runc_container, tmp_path):
    """One CPU, I/O on a loop device: every tool's figures are the container's, not the host's."""
    dev, major, minor = loop_device
    name = Path(dev).name
    # The host writes 32 MiB first: a view showing the host's counters would count them.
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={dev}", "bs=1M", "count=32", "seek=96", "oflag=direct"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # v1 counts a cgroup's I/O on a device only once a throttle rule names it.
    rule = {"major": major, "minor": minor, "rate": 10**10}
    script = (
        f"dd if=/dev/zero of={dev} bs=1M count=16 oflag=direct 2>/dev/null; "
        "echo '=== iostat'; " + WRITE_8M.format(dev, 16) + "iostat -d -k 1 2; wait; "
        "echo '=== vmstat'; " + WRITE_8M.format(dev, 24) + "vmstat 1 2; wait; "
        "echo '=== sar'; " + WRITE_8M.format(dev, 32) + "sar -d -p 1 1; wait; "
        "echo '=== counts'; getconf _NPROCESSORS_CONF; getconf _NPROCESSORS_ONLN; nproc --all; "
        "lscpu | grep '^CPU(s):'; ls -d /sys/devices/system/cpu/cpu[0-9]*; "
        f"echo '=== files'; cat /sys/block/{name}/stat; grep -E '^(pgpgin|pgpgout) ' /proc/vmstat; "
        "cat /proc/uptime; grep '^cpu' /proc/stat; sh -c 'echo $$'; cat /proc/loadavg; cat /proc/diskstats"
    )
    out = _ok(
        runc_container.one_shot(
            ["sh", "-c", script],
            cpus="1",
            block_io={"throttleReadBpsDevice": [rule], "throttleWriteBpsDevice": [rule]},
            block_devices=[dev],
            hooks={"createRuntime": [_hook(containerfs_mount.mountpoint, tmp_path / "hook.log")]},
        )
    )
    s = _sections(out)
    ours = 40 * 1024  # KiB the container wrote: 16 + 3 x 8 MiB

    # iostat: "(1 CPU)"; report 1 is since the container began, report 2 the 1 s interval
    assert re.search(r"\(1 CPU\)", s["iostat"]), s["iostat"]
    rows = [line.split() for line in s["iostat"].splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 2, s["iostat"]
    assert 16384 <= float(rows[0][6]) < 16384 + 1024, s["iostat"]  # kB_wrtn: not the host's 32 MiB
    assert 8192 <= float(rows[1][6]) < 8192 + 512, s["iostat"]
    assert 0.8 * 8192 <= float(rows[1][3]) <= 1.2 * 8192, s["iostat"]  # kB_wrtn/s over 1 s
    others = [r for r in (line.split() for line in s["iostat"].splitlines()) if r and r[0] not in (name, "Device")]
    assert all(float(r[6]) == 0 for r in others if len(r) == 8 and r[0] != "Linux"), s["iostat"]

    # vmstat: bo of the interval is the 8 MiB written in it; in/cs have no per-cgroup source
    lines = s["vmstat"].splitlines()
    head = lines[1].split()
    interval = dict(zip(head, (int(v) for v in lines[3].split())))
    since = dict(zip(head, (int(v) for v in lines[2].split())))
    assert 0.8 * 8192 <= interval["bo"] <= 1.2 * 8192, s["vmstat"]
    assert interval["si"] == interval["so"] == 0 and interval["in"] == interval["cs"] == since["cs"] == 0, s["vmstat"]
    assert since["bo"] > 0 and sum(interval[k] for k in ("us", "sy", "id", "wa", "st")) in range(98, 102)

    # sar -d reads /proc/diskstats: the loop device at the interval's rate
    sar = [line.split() for line in s["sar"].splitlines()]
    header = next((r for r in sar if "DEV" in r), [])  # "HH:MM:SS tps ... DEV", as wide as the rows
    assert header, s["sar"]
    wkb = header.index("wkB/s")
    devices = {r[header.index("DEV")]: float(r[wkb]) for r in sar if r[:1] == ["Average:"] and r[wkb] != "wkB/s"}
    assert 0.8 * 8192 <= devices.pop(name) <= 1.2 * 8192, s["sar"]
    # Devices it only read from (its binaries) may be listed; it wrote nowhere else.
    assert all(rate == 0 for rate in devices.values()), s["sar"]

    # every CPU count says 1, and the cpu directory holds cpu0 only
    assert s["counts"].split() == ["1", "1", "1", "CPU(s):", "1", "/sys/devices/system/cpu/cpu0"], s["counts"]

    files = s["files"].splitlines()
    stat = [int(v) for v in files[0].split()]
    assert ours * 2 <= stat[6] < (ours + 1024) * 2, files[0]  # sectors written
    vm = dict(line.split() for line in files[1:3])
    # paging I/O in KiB is the sum of the diskstats view's sectors over every device
    disks = [line.split() for line in files[8:]]
    assert int(vm["pgpgout"]) == sum(int(d[9]) for d in disks) // 2 == stat[6] // 2, files
    assert int(vm["pgpgin"]) == sum(int(d[5]) for d in disks) // 2, files
    up = float(files[3].split()[0])
    cpu_lines = [line.split() for line in files[4:6]]
    assert [fields[0] for fields in cpu_lines] == ["cpu", "cpu0"], files
    ticks = sum(int(v) for v in cpu_lines[1][1:9])
    assert abs(ticks - up * 100) <= 50, (files, "idle is the container's age less its use")
    # The newest pid is the reader (cat), forked right after that shell: the container's numbers.
    shell, loadavg = int(files[6]), files[7].split()
    assert shell < int(loadavg[4]) <= shell + 3, files


def test_a_block_device_added_after_injection_reaches_the_container(start_containerfs, runc_container, tmp_path):
    """The watcher's next pass binds the new device's stat file in containers it injected before."""
    daemon = start_containerfs("--watch", "--watch-include", f"/{PREFIX}-{SESSION}*", "--watch-interval", "0.2")
    c = runc_container()
    fuse_mounts = "grep -c ' - fuse.containerfs ' /proc/self/mountinfo"
    deadline = time.monotonic() + 15
    while int(c.sh(fuse_mounts)[1].strip() or 0) == 0:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    backing = tmp_path / "late.img"
    with open(backing, "wb") as f:
        f.truncate(8 * MiB)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    try:
        name = Path(dev).name
        target = os.path.realpath(f"/sys/block/{name}/stat")
        deadline = time.monotonic() + 15
        while f" {target} " not in c.sh("cat /proc/self/mountinfo")[1]:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.2)
        # the host writes to it, the container does not: the container's file stays zeros
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={dev}", "bs=1M", "count=1", "oflag=direct"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        assert Path(f"/sys/block/{name}/stat").read_text().split()[6] != "0"
        assert _ok(c.exec("cat", f"/sys/block/{name}/stat")).split() == ["0"] * 17
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
