"""/proc/meminfo from the container's memory cgroup."""

from __future__ import annotations

from containerfs.containers.memfigures import HOST_KEYS, meminfo_values
from containerfs.procfs.meminfo import meminfo_subset, render_meminfo
from containerfs.views.base import View, ViewContext, proc_file


def render(ctx: ViewContext) -> str:
    host_text = ctx.host.proc("meminfo")
    host = meminfo_subset(host_text, HOST_KEYS)
    values = meminfo_values(host, ctx.cgroups.memory(ctx.paths), v1=ctx.v1)
    return render_meminfo(host_text, values)


VIEW = View("proc/meminfo", proc_file("meminfo"), render)
