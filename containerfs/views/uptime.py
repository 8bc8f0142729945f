"""/proc/uptime: time since the reader's pid namespace began (its init started)."""

from __future__ import annotations

from containerfs.host.errors import ProcessGone
from containerfs.host.proc import ProcFS
from containerfs.procfs.uptime import Uptime, parse_uptime, render_uptime
from containerfs.views.base import View, ViewContext, proc_file


def start_ticks(ctx: ViewContext) -> int:
    """When the container began, in clock ticks after the host booted."""
    procfs = ProcFS(ctx.host.proc_root)
    if ctx.container.init_pid is not None:
        return procfs.process(ctx.container.init_pid).stat().starttime
    # In the host's pid namespace (--pid=host) the oldest process marks the start.
    starts = []
    for pid in ctx.cgroups.process_ids(ctx.paths):
        try:
            starts.append(procfs.process(pid).stat().starttime)
        except ProcessGone:
            continue  # exited while we looked
    if not starts:
        raise ProcessGone("container has no processes")
    return min(starts)


def seconds_up(host_up: float, start_ticks: int, ticks_per_second: int) -> float:
    """Seconds since a process started (start_ticks from /proc/PID/stat), given the host's uptime."""
    return max(0.0, host_up - start_ticks / ticks_per_second)


def container_uptime(host: Uptime, start_ticks: int, ticks_per_second: int, cpus: int, cpu_seconds: float) -> Uptime:
    up = seconds_up(host.up, start_ticks, ticks_per_second)
    # The real idle column sums over CPUs: time the visible CPUs were not used by us.
    return Uptime(up, max(0.0, up * cpus - cpu_seconds))


def figures(ctx: ViewContext) -> Uptime:
    """The file's figures; also what sysinfo(2) answers (uptime)."""
    host = parse_uptime(ctx.host.proc("uptime"))
    usage = ctx.cgroups.cpu_usage(ctx.paths)
    return container_uptime(
        host, start_ticks(ctx), ctx.clock_ticks, len(ctx.visible_cpus()), (usage.user_ns + usage.system_ns) / 1e9
    )


def render(ctx: ViewContext) -> str:
    return render_uptime(figures(ctx))


VIEW = View("proc/uptime", proc_file("uptime"), render)
