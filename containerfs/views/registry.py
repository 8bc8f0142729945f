"""The one list of synthesized files."""

from __future__ import annotations

from containerfs.views import (
    cpu_online,
    cpuinfo,
    diskstats,
    loadavg,
    meminfo,
    pressure_cpu,
    pressure_io,
    pressure_memory,
    stat,
    swaps,
    uptime,
)
from containerfs.views.base import View

VIEWS: dict[str, View] = {
    view.path: view
    for view in (
        meminfo.VIEW,
        cpuinfo.VIEW,
        stat.VIEW,
        loadavg.VIEW,
        uptime.VIEW,
        diskstats.VIEW,
        swaps.VIEW,
        cpu_online.VIEW,
        pressure_cpu.VIEW,
        pressure_memory.VIEW,
        pressure_io.VIEW,
    )
}


def directories() -> set[str]:
    """Every directory that leads to a view, "" being the mount's root."""
    dirs = {""}
    for path in VIEWS:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs
