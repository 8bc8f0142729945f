"""/proc/swaps: one `none ... virtual` line when the container has swap."""

from __future__ import annotations

from containerfs.containers.memfigures import HOST_KEYS, swap_figures
from containerfs.procfs.meminfo import meminfo_subset
from containerfs.procfs.swaps import render_swaps
from containerfs.views.base import View, ViewContext, proc_file


def render(ctx: ViewContext) -> str:
    host = meminfo_subset(ctx.host.proc("meminfo"), HOST_KEYS)
    swap = swap_figures(host, ctx.cgroups.memory(ctx.paths))
    return render_swaps(swap.total_kb, swap.used_kb)


VIEW = View("proc/swaps", proc_file("swaps"), render)
