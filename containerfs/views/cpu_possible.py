"""/sys/devices/system/cpu/possible: `0-N` for the visible CPUs, like online (nothing is hot-pluggable here)."""

from __future__ import annotations

from containerfs.cgroup.files import format_cpu_range
from containerfs.views.base import View, ViewContext


def render(ctx: ViewContext) -> str:
    return format_cpu_range(len(ctx.visible_cpus())) + "\n"


VIEW = View("sys/devices/system/cpu/possible", lambda host: host.sys("devices/system/cpu/possible"), render)
