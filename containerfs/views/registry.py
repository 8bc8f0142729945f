"""The one list of synthesized files."""

from __future__ import annotations

from collections.abc import Iterable

from containerfs.host.files import HostFiles
from containerfs.views import (
    block_stat,
    cpu_dir,
    cpu_offline,
    cpu_online,
    cpu_possible,
    cpu_present,
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
    vmstat,
)
from containerfs.views.base import Overlay, View

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
        vmstat.VIEW,
        cpu_online.VIEW,
        cpu_possible.VIEW,
        cpu_present.VIEW,
        cpu_offline.VIEW,
        pressure_cpu.VIEW,
        pressure_memory.VIEW,
        pressure_io.VIEW,
    )
}

# Directories served whole: their views above, the host's other entries passed through.
OVERLAYS: dict[str, Overlay] = {overlay.path: overlay for overlay in (cpu_dir.OVERLAY,)}


def device_views(host: HostFiles) -> dict[str, View]:
    """Views of the host's block devices, which come and go: one sysfs stat file each."""
    return block_stat.views(host)


def directories(paths: Iterable[str] = VIEWS) -> set[str]:
    """Every directory that leads to a view, "" being the mount's root."""
    dirs = {""}
    for path in paths:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs
