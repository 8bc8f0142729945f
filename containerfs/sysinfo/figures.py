"""The container's struct sysinfo, from the same functions its views render."""

from __future__ import annotations

import math

from containerfs.containers.memfigures import KIB
from containerfs.daemon.core import ContainerFS
from containerfs.procfs.loadavg import FSHIFT
from containerfs.sysinfo.abi import SI_LOAD_SHIFT, Sysinfo
from containerfs.views import loadavg, meminfo, uptime
from containerfs.views.base import ViewContext

# Memory in bytes: exact where pages would round, and 64-bit longs hold any RAM size.
MEM_UNIT = 1


def sysinfo_of(ctx: ViewContext) -> Sysinfo:
    """What /proc/uptime, /proc/loadavg and /proc/meminfo show the container, as sysinfo(2) says it."""
    mem = meminfo.values(ctx)
    load = loadavg.figures(ctx)
    up = uptime.figures(ctx)
    shift = SI_LOAD_SHIFT - FSHIFT  # as the kernel's get_avenrun(loads, 0, shift)
    return Sysinfo(
        # The kernel rounds a partial second up.
        uptime=math.ceil(up.up),
        loads=(load.averages[0] << shift, load.averages[1] << shift, load.averages[2] << shift),
        totalram=mem["MemTotal"] * KIB // MEM_UNIT,
        freeram=mem["MemFree"] * KIB // MEM_UNIT,
        # Shmem is missing from memory.stat on old v1 kernels: none counted.
        sharedram=mem.get("Shmem", 0) * KIB // MEM_UNIT,
        bufferram=mem["Buffers"] * KIB // MEM_UNIT,
        totalswap=mem["SwapTotal"] * KIB // MEM_UNIT,
        freeswap=mem["SwapFree"] * KIB // MEM_UNIT,
        procs=load.total,
        mem_unit=MEM_UNIT,
    )


def context_for(fs: ContainerFS, pid: int) -> ViewContext | None:
    """The views' context for host pid (the core's own); None for a host process."""
    return fs._context(pid)
