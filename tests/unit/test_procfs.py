"""Table-driven tests of the /proc parsers and renderers."""

from __future__ import annotations

import pytest

from containerfs.procfs.cpuinfo import parse_cpuinfo, render_cpuinfo
from containerfs.procfs.diskstats import parse_diskstats, render_diskstats
from containerfs.procfs.loadavg import EXP, FIXED_1, LoadAvg, decay, render_loadavg
from containerfs.procfs.meminfo import meminfo_subset, render_meminfo
from containerfs.procfs.mountinfo import parse_mountinfo
from containerfs.procfs.process import parse_proc_cgroup, parse_proc_stat, parse_proc_status
from containerfs.procfs.stat import CpuTimes, parse_stat, render_stat
from containerfs.procfs.swaps import HEADER, render_swaps
from containerfs.procfs.uptime import Uptime, parse_uptime, render_uptime

MEMINFO = (
    "MemTotal:       16384000 kB\nMemFree:         8000000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n"
)


def test_meminfo_subset_keeps_page_counts_and_sizes() -> None:
    assert meminfo_subset(MEMINFO, ("MemTotal", "MemFree", "HugePages_Total", "Hugepagesize")) == {
        "MemTotal": 16384000,
        "MemFree": 8000000,
        "HugePages_Total": 0,
        "Hugepagesize": 2048,
    }


@pytest.mark.parametrize(
    ("overrides", "expected_first_two"),
    [
        ({}, ["MemTotal:       16384000 kB", "MemFree:         8000000 kB"]),
        ({"MemTotal": 524288}, ["MemTotal:         524288 kB", "MemFree:         8000000 kB"]),
        ({"MemFree": 0}, ["MemTotal:       16384000 kB", "MemFree:               0 kB"]),
        # A value wider than the kernel's 8 columns pushes the unit right, as the kernel does.
        ({"MemFree": 123456789}, ["MemTotal:       16384000 kB", "MemFree:        123456789 kB"]),
    ],
)
def test_meminfo_render_substitutes_only_overridden(overrides: dict[str, int], expected_first_two: list[str]) -> None:
    out = render_meminfo(MEMINFO, overrides)
    assert out.splitlines()[:2] == expected_first_two
    assert out.splitlines()[2:] == MEMINFO.splitlines()[2:]
    assert out.endswith("\n")


STAT = (
    "cpu  100 5 50 1000 10 1 2 3 0 0\n"
    "cpu0 60 5 30 500 5 1 1 2 0 0\n"
    "cpu1 40 0 20 500 5 0 1 1 0 0\n"
    "intr 12345 0 0 1 2 3\n"
    "ctxt 999\n"
    "btime 1700000000\n"
    "processes 4242\n"
    "procs_running 3\n"
    "procs_blocked 0\n"
    "softirq 1 2 3\n"
)


def test_stat_parse() -> None:
    stat = parse_stat(STAT)
    assert stat.times("cpu") == CpuTimes(100, 5, 50, 1000, 10, 1, 2, 3, 0, 0)
    assert sorted(stat.cpu_fields) == ["cpu", "cpu0", "cpu1"]
    times = stat.times("cpu1")
    assert times is not None and times.total() == 40 + 20 + 500 + 5 + 1 + 1
    assert stat.times("cpu7") is None
    assert stat.other_lines[0] == "intr 12345 0 0 1 2 3"
    assert stat.other_lines[-1] == "softirq 1 2 3"


def test_stat_parse_old_kernel_with_fewer_columns() -> None:
    # Before 2.6.33 there was no guest_nice; before 2.6.24 no guest.
    stat = parse_stat("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n")
    assert stat.times("cpu0") == CpuTimes(1, 2, 3, 4, 5, 6, 7, 0, 0, 0)


def test_stat_render_aggregate_is_sum() -> None:
    lines = [CpuTimes(user=1, system=2, idle=3), CpuTimes(user=10, system=20, idle=30)]
    out = render_stat(lines, ["ctxt 5"])
    assert out.splitlines() == [
        "cpu  11 0 22 33 0 0 0 0 0 0",
        "cpu0 1 0 2 3 0 0 0 0 0 0",
        "cpu1 10 0 20 30 0 0 0 0 0 0",
        "ctxt 5",
    ]


CPUINFO = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\nphysical id\t: 0\nsiblings\t: 4\n"
    f"core id\t\t: {i}\ncpu cores\t: 4\n\n"
    for i in range(4)
)


def test_cpuinfo_select_and_renumber() -> None:
    blocks, stray = parse_cpuinfo(CPUINFO)
    assert [b.processor for b in blocks] == [0, 1, 2, 3]
    assert stray == ""
    out = render_cpuinfo([blocks[2], blocks[3]])
    assert [line for line in out.splitlines() if line.startswith("processor")] == ["processor\t: 0", "processor\t: 1"]
    assert out.count("siblings\t: 2") == 2 and out.count("cpu cores\t: 2") == 2
    assert "core id\t\t: 2" in out  # other fields stay the host's
    assert out.endswith("\n\n")


def test_cpuinfo_without_processor_blocks() -> None:
    # s390x prints a header of shared facts and one line per CPU, not blocks.
    blocks, stray = parse_cpuinfo("vendor_id       : IBM/S390\n# processors    : 2\nprocessor 0: version = FF\n")
    assert blocks == []
    assert "IBM/S390" in stray


def test_diskstats_roundtrip() -> None:
    text = (
        "   8       0 sda 100 1 800 10 50 2 400 20 0 30 30 0 0 0 0 0 0\n 259       0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11\n"
    )
    disks = parse_diskstats(text)
    assert [(d.major, d.minor, d.name, len(d.counters)) for d in disks] == [(8, 0, "sda", 17), (259, 0, "nvme0n1", 11)]
    assert render_diskstats(disks) == text


@pytest.mark.parametrize(
    ("size", "used", "lines"),
    [
        (0, 0, 1),
        (262144, 65536, 2),
    ],
)
def test_swaps_render(size: int, used: int, lines: int) -> None:
    out = render_swaps(size, used)
    assert out.startswith(HEADER)
    assert len(out.splitlines()) == lines
    if size:
        fields = out.splitlines()[1].split()
        assert fields == ["none", "virtual", str(size), str(used), "0"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12345.67 23456.78\n", Uptime(12345.67, 23456.78)), ("0.50 0.10", Uptime(0.5, 0.1))],
)
def test_uptime_parse(text: str, expected: Uptime) -> None:
    assert parse_uptime(text) == expected


def test_uptime_render() -> None:
    assert render_uptime(Uptime(1.005, 0)) in ("1.00 0.00\n", "1.01 0.00\n")
    assert render_uptime(Uptime(86400.5, 10.25)) == "86400.50 10.25\n"


@pytest.mark.parametrize(
    ("averages", "running", "total", "last", "expected"),
    [
        ((0, 0, 0), 0, 1, 7, "0.00 0.00 0.00 0/1 7\n"),
        ((FIXED_1, FIXED_1 // 2, FIXED_1 * 3), 2, 10, 99, "1.00 0.50 3.00 2/10 99\n"),
    ],
)
def test_loadavg_render(averages: tuple[int, int, int], running: int, total: int, last: int, expected: str) -> None:
    assert render_loadavg(LoadAvg(averages, running, total, last)) == expected


def test_loadavg_decay_converges_like_the_kernel() -> None:
    # One busy task for 60 s (12 samples): the 1-minute average reaches 1 - 1/e.
    load = 0
    for _ in range(12):
        load = decay(load, EXP[0], 1 * FIXED_1)
    assert 0.62 < load / FIXED_1 < 0.65
    # ... and an idle container decays towards zero, never below.
    for _ in range(200):
        load = decay(load, EXP[0], 0)
    assert load == 0


@pytest.mark.parametrize(
    ("text", "state", "start"),
    [
        ("42 (bash) S 1 42 42 0 -1 4194560 " + "0 " * 12 + "1234 0 0\n", "S", 1234),
        # comm with spaces and parentheses
        ("43 (a) b (c)) R 1 43 43 0 -1 4194560 " + "0 " * 12 + "99 0 0\n", "R", 99),
    ],
)
def test_proc_stat(text: str, state: str, start: int) -> None:
    parsed = parse_proc_stat(text)
    assert (parsed.state, parsed.starttime) == (state, start)


def test_proc_status() -> None:
    status = parse_proc_status("Name:\tsh\nPPid:\t900\nNSpid:\t2002\t12\n")
    assert status.ppid == 900 and status.nspid == [2002, 12]
    with pytest.raises(ValueError, match="NSpid"):
        parse_proc_status("Name:\tsh\nPPid:\t1\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0::/system.slice/docker-abc.scope\n", {"": "/system.slice/docker-abc.scope"}),
        (
            "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n",
            {
                "cpu": "/docker/abc",
                "cpuacct": "/docker/abc",
                "memory": "/docker/abc",
                "name=systemd": "/docker/abc",
                "": "/docker/abc",
            },
        ),
        ("garbage\n", {}),
    ],
)
def test_proc_cgroup(text: str, expected: dict[str, str]) -> None:
    assert parse_proc_cgroup(text) == expected


def test_mountinfo() -> None:
    text = (
        "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n"
        "50 36 0:45 / /var/lib/containerfs ro,nosuid - fuse.containerfs containerfs ro\n"
    )
    mounts = parse_mountinfo(text)
    assert mounts[0].mountpoint == "/mnt/with space" and mounts[0].fstype == "ext3"
    assert (mounts[0].dev, mounts[0].root) == ("98:0", "/mnt1")
    assert mounts[1].fstype == "fuse.containerfs" and mounts[1].dev == "0:45"


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/plain", "/plain"),
        ("/with\\040space", "/with space"),
        ("/caf\u00e9\\040bar", "/caf\u00e9 bar"),  # UTF-8 and an escape in one name
        ("/\u65e5\u672c\\011tab\\012newline", "/\u65e5\u672c\ttab\nnewline"),
        ("/back\\134slash\\134040", "/back\\slash\\040"),  # an escaped backslash is not an escape
        ("/bad\udcff\\040byte", "/bad\udcff byte"),  # not UTF-8: kept as surrogateescape
        ("/not\\9octal", "/not\\9octal"),
    ],
)
def test_mountinfo_unescapes_octal_only(field: str, path: str) -> None:
    line = f"36 35 98:0 {field} {field} rw - ext4 {field} rw\n"
    assert parse_mountinfo(line)[0][:3] == (path, "ext4", path)
    assert parse_mountinfo(line)[0].root == path


@pytest.mark.parametrize(
    ("key", "expected"),
    [("MemTotal", 16384000), ("MemFree", 8000000), ("HugePages_Total", 0), ("Hugepagesize", 2048), ("Nope", 0)],
)
def test_meminfo_subset_one_key(key: str, expected: int) -> None:
    assert meminfo_subset(MEMINFO, (key,)) == {key: expected}


def test_meminfo_render_does_not_confuse_prefixes() -> None:
    text = "Active:             100 kB\nActive(anon):        60 kB\nActive(file):        40 kB\n"
    out = render_meminfo(text, {"Active": 5, "Active(file)": 2})
    assert out == "Active:                5 kB\nActive(anon):        60 kB\nActive(file):          2 kB\n"
