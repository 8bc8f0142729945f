"""/proc/swaps: one `none ... virtual` line when the container has swap."""

from __future__ import annotations

from containerfs.memory import swap_figures
from containerfs.procfs.meminfo import parse_meminfo
from containerfs.procfs.swaps import render_swaps
from containerfs.views.base import View, ViewContext, proc_file


def render(ctx: ViewContext) -> str:
    swap = swap_figures(parse_meminfo(ctx.host.proc("meminfo")), ctx.cgroups.memory(ctx.paths))
    return render_swaps(swap.total_kb, swap.used_kb)


VIEW = View("proc/swaps", proc_file("swaps"), render)
