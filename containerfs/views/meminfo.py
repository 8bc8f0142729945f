"""/proc/meminfo from the container's memory cgroup."""

from __future__ import annotations

from containerfs.containers.memfigures import HOST_KEYS, meminfo_values
from containerfs.procfs.meminfo import meminfo_subset, render_meminfo
from containerfs.views.base import View, ViewContext, proc_file


def values(ctx: ViewContext, host_text: str | None = None) -> dict[str, int]:
    """The lines (kB) the container's counters replace; also what sysinfo(2) answers."""
    host = meminfo_subset(host_text if host_text is not None else ctx.host.proc("meminfo"), HOST_KEYS)
    return meminfo_values(host, ctx.cgroups.memory(ctx.paths), v1=ctx.v1)


def render(ctx: ViewContext) -> str:
    host_text = ctx.host.proc("meminfo")
    return render_meminfo(host_text, values(ctx, host_text))


VIEW = View("proc/meminfo", proc_file("meminfo"), render)
