"""/proc/cpuinfo: the host's blocks for the visible CPUs, renumbered from 0."""

from __future__ import annotations

from containerfs.procfs.cpuinfo import parse_cpuinfo, render_cpuinfo
from containerfs.views.base import View, ViewContext, proc_file


def render(ctx: ViewContext) -> str:
    host_text = ctx.host.proc("cpuinfo")
    blocks, _ = parse_cpuinfo(host_text)
    if not blocks:
        # s390x and others list CPUs without per-processor blocks: nothing to select.
        return host_text
    by_cpu = {block.processor: block for block in blocks}
    return render_cpuinfo([by_cpu[cpu] for cpu in ctx.visible_cpus() if cpu in by_cpu])


VIEW = View("proc/cpuinfo", proc_file("cpuinfo"), render)
