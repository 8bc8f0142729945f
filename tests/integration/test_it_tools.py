"""Real procps/sysstat tools inside real runc containers reading containerfs views."""

import os
import re
import time
from pathlib import Path

import pytest
from cfs_harness import expected_swap_kb, parse_meminfo

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
