"""/proc/vmstat: the container's paging, swapping and fault counters; vmstat's bi/bo/si/so.

Per field family:

* pgpgin/pgpgout: KiB read from and written to block devices, from the cgroup's I/O
  bytes (the counters of the diskstats view).  v1's memory.stat pgpgin/pgpgout count
  pages charged to the cgroup, not I/O, and are not used.  Without per-cgroup I/O
  counters the host's, as the diskstats view then shows the host's file.
* pgfault, pgmajfault, pswpin, pswpout, workingset_*: memory.stat's counters of the same
  name (v1: total_*, hierarchical).  A key this kernel's memory.stat lacks (pswpin and
  pswpout on v1 and on older v2 kernels; workingset_activate/restore on v1) reads 0.
* nr_* page counts that memory.stat has (anon, file, mapped, dirty, writeback, shmem,
  the LRU lists, slab, page tables, kernel stack): the container's, in pages (kernel
  stack in KiB, as the kernel prints it); nr_free_pages from the meminfo view's MemFree.
* everything else 0: the host's counters count every tenant since the host booted (a
  rate tool would show the host's activity as the container's, the bug this file
  fixes), and its tunables-derived figures (dirty thresholds) describe the host.  0 is
  also monotonic, so rate tools print 0, never garbage.
"""

from __future__ import annotations

import resource

from containerfs.cgroup.records import IoCounters
from containerfs.containers.memfigures import HOST_KEYS, meminfo_values
from containerfs.procfs.meminfo import meminfo_subset
from containerfs.procfs.vmstat import parse_vmstat, render_vmstat
from containerfs.views.base import View, ViewContext, proc_file

KIB = 1024
# vmstat name -> memory.stat key (bytes), shown in pages.
PAGE_COUNTS = {
    "nr_inactive_anon": "inactive_anon",
    "nr_active_anon": "active_anon",
    "nr_inactive_file": "inactive_file",
    "nr_active_file": "active_file",
    "nr_unevictable": "unevictable",
    "nr_anon_pages": "anon",
    "nr_mapped": "file_mapped",
    "nr_file_pages": "file",
    "nr_dirty": "file_dirty",
    "nr_writeback": "file_writeback",
    "nr_shmem": "shmem",
    "nr_slab_reclaimable": "slab_reclaimable",
    "nr_slab_unreclaimable": "slab_unreclaimable",
    "nr_page_table_pages": "pagetables",
    "nr_swapcached": "swapcached",
}


def container_vmstat(
    host: list[tuple[str, int]],
    io: IoCounters | None,
    events: dict[str, int],
    stat: dict[str, int],
    free_kb: int,
    page_size: int,
) -> list[tuple[str, int]]:
    """The host's fields in the host's order, each with the container's value."""
    values = {name: stat.get(key, 0) // page_size for name, key in PAGE_COUNTS.items()}
    values["nr_kernel_stack"] = stat.get("kernel_stack", 0) // KIB
    values["nr_free_pages"] = free_kb * KIB // page_size
    values.update(events)
    if io is not None:
        values["pgpgin"] = sum(device.rbytes for device in io.values()) // KIB
        values["pgpgout"] = sum(device.wbytes for device in io.values()) // KIB
    keep = () if io is not None else ("pgpgin", "pgpgout")
    return [(name, value if name in keep else values.get(name, 0)) for name, value in host]


def render(ctx: ViewContext) -> str:
    memory = ctx.cgroups.memory(ctx.paths)
    host_meminfo = meminfo_subset(ctx.host.proc("meminfo"), HOST_KEYS)
    free_kb = meminfo_values(host_meminfo, memory, v1=ctx.v1)["MemFree"]
    fields = container_vmstat(
        parse_vmstat(ctx.host.proc("vmstat")),
        ctx.cgroups.io(ctx.paths),
        ctx.cgroups.memory_events(ctx.paths),
        memory.stat,
        free_kb,
        resource.getpagesize(),
    )
    return render_vmstat(fields)


VIEW = View("proc/vmstat", proc_file("vmstat"), render)
