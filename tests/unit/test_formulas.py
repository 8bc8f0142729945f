"""Table-driven tests of the formulas: memory, CPUs, stat, uptime, diskstats."""

from __future__ import annotations

from fractions import Fraction

import pytest

from containerfs.cgroup.records import CpuLimits, CpuUsage, IoDevice, MemoryCounters
from containerfs.containers.cpus import visible_cpus
from containerfs.containers.memfigures import meminfo_values, swap_figures
from containerfs.procfs.diskstats import DiskLine
from containerfs.procfs.stat import CpuTimes
from containerfs.procfs.uptime import Uptime
from containerfs.views.diskstats import container_line
from containerfs.views.stat import container_cpu_lines, never_backwards, split_evenly
from containerfs.views.uptime import container_uptime

MiB = 1 << 20
HOST = {"MemTotal": 16 * 1024 * 1024, "SwapTotal": 4 * 1024 * 1024, "SwapFree": 3 * 1024 * 1024}


def counters(
    limit: int | None = 512 * MiB,
    usage: int = 300 * MiB,
    stat: dict[str, int] | None = None,
    swap: tuple[bool, int | None, int] = (True, 256 * MiB, 64 * MiB),
) -> MemoryCounters:
    return MemoryCounters(limit, usage, stat or {}, *swap)


@pytest.mark.parametrize(
    ("mem", "expected"),
    [
        # limited container
        (counters(), {"MemTotal": 524288, "MemFree": 524288 - 307200, "SwapTotal": 262144, "SwapFree": 196608}),
        # no limit anywhere: the host's total with the container's usage
        (counters(limit=None), {"MemTotal": HOST["MemTotal"], "MemFree": HOST["MemTotal"] - 307200}),
        # limit above the host's memory
        (counters(limit=1 << 50), {"MemTotal": HOST["MemTotal"]}),
        # usage above the limit (v1 usage is approximate): never negative
        (counters(limit=256 * MiB, usage=300 * MiB), {"MemTotal": 262144, "MemFree": 0, "MemAvailable": 0}),
        # swap limit above the host's swap: never above the host
        (counters(swap=(True, 1 << 40, 0)), {"SwapTotal": HOST["SwapTotal"], "SwapFree": HOST["SwapTotal"]}),
        # swap in use above the limit: free clamps at 0
        (counters(swap=(True, 64 * MiB, 128 * MiB)), {"SwapTotal": 65536, "SwapFree": 0}),
        # no swap accounting: the host's swap
        (counters(swap=(False, None, 0)), {"SwapTotal": HOST["SwapTotal"], "SwapFree": HOST["SwapFree"]}),
        # no swap limit: the host's total, the container's usage
        (counters(swap=(True, None, 1 * MiB)), {"SwapTotal": HOST["SwapTotal"], "SwapFree": HOST["SwapTotal"] - 1024}),
    ],
)
def test_meminfo_values(mem: MemoryCounters, expected: dict[str, int]) -> None:
    values = meminfo_values(HOST, mem, v1=True)
    assert {key: values[key] for key in expected} == expected
    assert all(v >= 0 for v in values.values())


@pytest.mark.parametrize(
    ("stat", "v1", "available_kb"),
    [
        # free (200 MiB) + page cache
        ({"active_file": 10 * MiB, "inactive_file": 20 * MiB}, True, (200 + 30) * 1024),
        # v2 adds reclaimable slab
        ({"active_file": 10 * MiB, "inactive_file": 20 * MiB, "slab_reclaimable": 5 * MiB}, False, (200 + 35) * 1024),
        # never above MemTotal even with inconsistent counters
        ({"active_file": 900 * MiB}, True, 512 * 1024),
        ({}, True, 200 * 1024),
    ],
)
def test_mem_available(stat: dict[str, int], v1: bool, available_kb: int) -> None:
    values = meminfo_values(HOST, counters(limit=512 * MiB, usage=312 * MiB, stat=stat), v1=v1)
    assert values["MemAvailable"] == available_kb
    assert values["MemFree"] <= values["MemAvailable"] <= values["MemTotal"]


def test_meminfo_breakdown_v2_and_v1_slab() -> None:
    stat = {
        "file": 100 * MiB,
        "anon": 50 * MiB,
        "shmem": 1 * MiB,
        "active_anon": 40 * MiB,
        "inactive_anon": 10 * MiB,
        "active_file": 60 * MiB,
        "inactive_file": 40 * MiB,
        "slab_reclaimable": 3 * MiB,
        "slab_unreclaimable": 2 * MiB,
        "file_dirty": 1 * MiB,
        "anon_thp": 0,
    }
    v2 = meminfo_values(HOST, counters(stat=stat), v1=False)
    assert (v2["Cached"], v2["AnonPages"], v2["Shmem"]) == (102400, 51200, 1024)
    assert (v2["Active"], v2["Inactive"]) == (100 * 1024, 50 * 1024)
    assert (v2["Slab"], v2["SReclaimable"], v2["SUnreclaim"]) == (5 * 1024, 3 * 1024, 2 * 1024)
    assert v2["Buffers"] == 0 and v2["Dirty"] == 1024 and v2["AnonHugePages"] == 0
    v1 = meminfo_values(HOST, counters(stat=stat), v1=True)
    # v1 keeps no slab breakdown: zero, not the host's figures
    assert (v1["Slab"], v1["SReclaimable"], v1["SUnreclaim"]) == (0, 0, 0)


def test_cached_never_above_used() -> None:
    values = meminfo_values(HOST, counters(usage=10 * MiB, stat={"file": 50 * MiB}), v1=True)
    assert values["Cached"] == 10 * 1024


def test_swap_figures_used() -> None:
    assert swap_figures(HOST, counters()).used_kb == 65536


@pytest.mark.parametrize(
    ("host", "limits", "use_quota", "expected"),
    [
        ([0, 1, 2, 3], CpuLimits(None, None), True, [0, 1, 2, 3]),
        ([0, 1, 2, 3], CpuLimits([2, 3], None), True, [2, 3]),
        ([0, 1, 2, 3], CpuLimits([0, 1, 2, 3], Fraction(3, 2)), True, [0, 1]),  # 1.5 CPUs -> 2
        ([0, 1, 2, 3], CpuLimits([0, 1, 2, 3], Fraction(3, 2)), False, [0, 1, 2, 3]),
        ([0, 1, 2, 3], CpuLimits([1, 3], Fraction(1, 10)), True, [1]),  # a tiny quota still shows one
        ([0, 1, 2, 3], CpuLimits([0], Fraction(8)), True, [0]),  # quota above the cpuset
        ([0, 1], CpuLimits([6, 7], None), True, [0, 1]),  # only offline CPUs: the host's
        ([0, 1, 4, 5], CpuLimits([0, 1, 2, 3, 4], None), True, [0, 1, 4]),  # offline CPUs dropped
    ],
)
def test_visible_cpus(host: list[int], limits: CpuLimits, use_quota: bool, expected: list[int]) -> None:
    assert visible_cpus(host, limits, use_quota) == expected


@pytest.mark.parametrize(("total", "parts"), [(0, 1), (7, 2), (10, 3), (1, 4)])
def test_split_evenly(total: int, parts: int) -> None:
    shares = split_evenly(total, parts)
    assert sum(shares) == total and max(shares) - min(shares) <= 1
    assert all(a <= b for a, b in zip(shares, split_evenly(total + 1, parts)))  # monotonic


NS_PER_TICK = 10_000_000


@pytest.mark.parametrize(
    ("cpus", "usage", "expected"),
    [
        # per-CPU (v1) where every used CPU is shown: each line its own CPU's time
        (
            [0, 1],
            CpuUsage(
                30 * NS_PER_TICK,
                3 * NS_PER_TICK,
                {0: (10 * NS_PER_TICK, 1 * NS_PER_TICK), 1: (20 * NS_PER_TICK, 2 * NS_PER_TICK)},
            ),
            [CpuTimes(user=10, system=1, idle=989), CpuTimes(user=20, system=2, idle=978)],
        ),
        # v2: no per-CPU split, shared evenly
        (
            [0, 1],
            CpuUsage(31 * NS_PER_TICK, 4 * NS_PER_TICK, None),
            [CpuTimes(user=16, system=2, idle=982), CpuTimes(user=15, system=2, idle=983)],
        ),
        # quota narrower than the CPUs used: folded evenly into the shown ones
        (
            [0],
            CpuUsage(30 * NS_PER_TICK, 0, {0: (10 * NS_PER_TICK, 0), 3: (20 * NS_PER_TICK, 0)}),
            [CpuTimes(user=30, system=0, idle=970)],
        ),
        # more use than the container's age (the cgroup ran before its init): idle clamps at 0
        ([0], CpuUsage(5000 * NS_PER_TICK, 0, None), [CpuTimes(user=5000, system=0, idle=0)]),
        # a CPU the host numbers beyond its file: the same age, nothing from the host's idle
        ([9], CpuUsage(0, 0, None), [CpuTimes(user=0, system=0, idle=1000)]),
    ],
)
def test_container_cpu_lines(cpus: list[int], usage: CpuUsage, expected: list[CpuTimes]) -> None:
    # 1000 ticks old: idle is the age less the use, whatever the host's idle says.
    assert container_cpu_lines(cpus, usage, 100, 1000) == expected


@pytest.mark.parametrize(
    ("new", "floor", "expected"),
    [
        ([CpuTimes(5, 0, 5, 5)], [], [CpuTimes(5, 0, 5, 5)]),
        ([CpuTimes(5, 0, 5, 4)], [CpuTimes(4, 0, 6, 5)], [CpuTimes(5, 0, 6, 5)]),
        # a CPU added: new ones start where they are
        ([CpuTimes(1), CpuTimes(2)], [CpuTimes(3)], [CpuTimes(3), CpuTimes(2)]),
    ],
)
def test_never_backwards(new: list[CpuTimes], floor: list[CpuTimes], expected: list[CpuTimes]) -> None:
    assert never_backwards(new, floor) == expected


@pytest.mark.parametrize(
    ("host", "start", "cpus", "cpu_seconds", "expected"),
    [
        (Uptime(1000.0, 0), 90000, 2, 10.0, Uptime(100.0, 190.0)),
        # container busier than its CPUs (quota burst): idle never negative
        (Uptime(1000.0, 0), 90000, 1, 500.0, Uptime(100.0, 0.0)),
        # start time after host uptime (clock skew between reads): never negative
        (Uptime(10.0, 0), 2000, 1, 0.0, Uptime(0.0, 0.0)),
    ],
)
def test_container_uptime(host: Uptime, start: int, cpus: int, cpu_seconds: float, expected: Uptime) -> None:
    assert container_uptime(host, start, 100, cpus, cpu_seconds) == expected


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (17, (3, 0, 8, 0, 5, 0, 16, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0)),
        (11, (3, 0, 8, 0, 5, 0, 16, 0, 0, 0, 0)),  # pre-4.18: no discard columns
    ],
)
def test_diskstats_container_line(columns: int, expected: tuple[int, ...]) -> None:
    host = DiskLine(8, 0, "sda", tuple(range(100, 100 + columns)))
    line = container_line(host, IoDevice(rbytes=4096, wbytes=8192, rios=3, wios=5, dbytes=1024, dios=1))
    assert line.counters == expected and line.name == "sda"
