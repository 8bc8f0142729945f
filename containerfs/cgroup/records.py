"""The cgroup-version-neutral model the views compute from."""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

# memory.stat keys in v2 spelling; the v1 reader translates its total_* keys to these.
MEMORY_STAT_KEYS = (
    "anon",
    "file",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "kernel_stack",
    "pagetables",
    "swapcached",
    "sec_pagetables",
    "percpu",
    "zswap",
    "zswapped",
    "file_thp",
    "shmem_thp",
)


# Event counters that memory.stat and /proc/vmstat both name (counts, not bytes).  v1
# prefixes the hierarchical ones with total_; v2 is hierarchical.  v1's pgpgin/pgpgout
# count pages charged to the cgroup, not block I/O, so they are not among them.
MEMORY_EVENT_KEYS = (
    "pgfault",
    "pgmajfault",
    "pswpin",
    "pswpout",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
)


class MemoryCounters(NamedTuple):
    limit: int | None  # bytes, minimum over the cgroup and its ancestors; None: no limit
    usage: int
    stat: dict[str, int]  # MEMORY_STAT_KEYS that this kernel reports, in bytes
    swap_accounted: bool  # False: the kernel keeps no per-cgroup swap counters
    swap_limit: int | None  # swap space (not memory+swap) in bytes; None: no limit
    swap_usage: int


class CpuLimits(NamedTuple):
    cpus: list[int] | None  # effective cpuset; None: every host CPU
    quota: Fraction | None  # CPUs worth of quota, smallest over the ancestors; None: none


class CpuUsage(NamedTuple):
    user_ns: int
    system_ns: int
    per_cpu: dict[int, tuple[int, int]] | None  # host CPU -> (user_ns, system_ns); v2 has none


class PidsCounters(NamedTuple):
    current: int  # tasks in the cgroup and its descendants
    limit: int | None  # pids.max, smallest over the cgroup and its ancestors; None: no limit


class IoDevice(NamedTuple):
    rbytes: int = 0
    wbytes: int = 0
    rios: int = 0
    wios: int = 0
    dbytes: int = 0
    dios: int = 0


# None where the kernel keeps no per-cgroup I/O counters at all.
IoCounters = dict[tuple[int, int], IoDevice]
