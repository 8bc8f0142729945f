"""meminfo and swap figures for a container, from its memory counters and the host's."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.cgroup.records import MemoryCounters

KIB = 1024
# The host's meminfo figures the container's are computed from.
HOST_KEYS = ("MemTotal", "SwapTotal", "SwapFree", "Mlocked")


class SwapFigures(NamedTuple):
    total_kb: int
    free_kb: int

    @property
    def used_kb(self) -> int:
        return self.total_kb - self.free_kb


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def working_set(mem: MemoryCounters) -> int:
    """Bytes the container cannot give back without swapping: usage less inactive page cache."""
    return max(0, mem.usage - mem.stat.get("inactive_file", 0))


def swap_figures(host: dict[str, int], mem: MemoryCounters) -> SwapFigures:
    host_total = host.get("SwapTotal", 0)
    if not mem.swap_accounted:
        # No per-cgroup swap counters (v1 swapaccount=0, v2 without memory.swap.*):
        # the host's swap is all that can be said.
        return SwapFigures(host_total, _clamp(host.get("SwapFree", 0), 0, host_total))
    total = host_total if mem.swap_limit is None else min(mem.swap_limit // KIB, host_total)
    used = _clamp(mem.swap_usage // KIB, 0, total)
    return SwapFigures(total, total - used)


def meminfo_values(host: dict[str, int], mem: MemoryCounters, v1: bool) -> dict[str, int]:
    """meminfo lines (kB) that the container's counters replace; the rest stay the host's.

    Every value is clamped to [0, MemTotal]: a negative or wrapped value crashes free
    and ps (lxcfs #389, #695).
    """
    host_total = host["MemTotal"]
    total = host_total if mem.limit is None else min(mem.limit // KIB, host_total)
    used = _clamp(mem.usage // KIB, 0, total)
    free = total - used
    stat = {key: value // KIB for key, value in mem.stat.items()}

    def stat_sum(*keys: str) -> int | None:
        present = [stat[k] for k in keys if k in stat]
        return sum(present) if present else None

    reclaimable = (stat_sum("active_file", "inactive_file") or 0) + stat.get("slab_reclaimable", 0)
    values: dict[str, int | None] = {
        "MemTotal": total,
        "MemFree": free,
        "MemAvailable": _clamp(free + reclaimable, free, total),
        "Buffers": 0,  # cgroups do not account buffers separately from page cache
        # Page cache is part of usage; v1 usage is approximate (per-cpu batching), and a
        # Cached above used would make free's "used" negative.
        "Cached": None if "file" not in stat else min(stat["file"], used),
        "SwapCached": stat.get("swapcached", 0),
        "Active": stat_sum("active_anon", "active_file"),
        "Inactive": stat_sum("inactive_anon", "inactive_file"),
        "Active(anon)": stat.get("active_anon"),
        "Inactive(anon)": stat.get("inactive_anon"),
        "Active(file)": stat.get("active_file"),
        "Inactive(file)": stat.get("inactive_file"),
        "Unevictable": stat.get("unevictable"),
        "Dirty": stat.get("file_dirty"),
        "Writeback": stat.get("file_writeback"),
        "AnonPages": stat.get("anon"),
        "Mapped": stat.get("file_mapped"),
        "Shmem": stat.get("shmem"),
        "AnonHugePages": stat.get("anon_thp"),
        "KernelStack": stat.get("kernel_stack"),
        "PageTables": stat.get("pagetables"),
        "SecPageTables": stat.get("sec_pagetables"),
        "Percpu": stat.get("percpu"),
        "Zswap": stat.get("zswap"),
        "Zswapped": stat.get("zswapped"),
        "FileHugePages": stat.get("file_thp"),
        "ShmemHugePages": stat.get("shmem_thp"),
        # No cgroup counts mlocked pages, but they are a part of Unevictable.
        "Mlocked": min(host.get("Mlocked", 0), stat.get("unevictable", 0)),
    }
    if v1:
        # v1 memory.stat has no slab breakdown; the host's figures would make free's
        # buff/cache (Buffers + Cached + SReclaimable) exceed the container's memory.
        values.update(Slab=0, SReclaimable=0, SUnreclaim=0, KReclaimable=0)
    else:
        slab = stat_sum("slab_reclaimable", "slab_unreclaimable")
        values.update(
            Slab=slab,
            SReclaimable=stat.get("slab_reclaimable"),
            SUnreclaim=stat.get("slab_unreclaimable"),
            KReclaimable=stat.get("slab_reclaimable"),
        )
    result = {key: (0 if v < 0 else total if v > total else v) for key, v in values.items() if v is not None}
    swap = swap_figures(host, mem)
    result.update(SwapTotal=swap.total_kb, SwapFree=swap.free_kb)
    return result
