"""/proc/diskstats: the host's lines for devices the container did I/O on, its counts."""

from __future__ import annotations

import functools
import logging

from containerfs.cgroup.records import IoDevice
from containerfs.procfs import diskstats as ds
from containerfs.views.base import View, ViewContext, proc_file

log = logging.getLogger(__name__)

SECTOR = 512


def device_counters(host_counters: tuple[int, ...], io: IoDevice) -> tuple[int, ...]:
    """A device's counters for the container, shaped like the host's (diskstats and sysfs stat)."""
    counters = [0] * len(host_counters)  # columns with no cgroup source (times, merges) are 0
    for position, value in (
        (ds.READS, io.rios),
        (ds.SECTORS_READ, io.rbytes // SECTOR),
        (ds.WRITES, io.wios),
        (ds.SECTORS_WRITTEN, io.wbytes // SECTOR),
        (ds.DISCARDS, io.dios),
        (ds.SECTORS_DISCARDED, io.dbytes // SECTOR),
    ):
        if position < len(counters):  # discard columns exist since Linux 4.18
            counters[position] = value
    return tuple(counters)


def container_line(host: ds.DiskLine, io: IoDevice) -> ds.DiskLine:
    return host._replace(counters=device_counters(host.counters, io))


@functools.lru_cache(maxsize=1)
def warn_no_counters() -> None:
    """Logged once per daemon: the layout, not a container, lacks the counters."""
    log.warning(
        "this kernel keeps no per-cgroup I/O counters (no blkio/io.stat): containers read the host's /proc/diskstats"
    )


def render(ctx: ViewContext) -> str:
    host_text = ctx.host.proc("diskstats")
    counters = ctx.cgroups.io(ctx.paths)
    if counters is None:
        warn_no_counters()
        return host_text
    lines = [
        container_line(disk, counters[(disk.major, disk.minor)])
        for disk in ds.parse_diskstats(host_text)
        if any(counters.get((disk.major, disk.minor), ()))
    ]
    return ds.render_diskstats(lines)


VIEW = View("proc/diskstats", proc_file("diskstats"), render)
