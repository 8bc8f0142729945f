"""/proc/uptime: time since the reader's pid namespace began (its init started)."""

from __future__ import annotations

from containerfs.host.fsread import read_text
from containerfs.procfs.process import parse_proc_stat
from containerfs.procfs.uptime import Uptime, parse_uptime, render_uptime
from containerfs.views.base import View, ViewContext, proc_file


def _start_ticks(ctx: ViewContext) -> int:
    proc_root = ctx.host.proc_root
    if ctx.container.init_pid is not None:
        return parse_proc_stat(read_text(f"{proc_root}/{ctx.container.init_pid}/stat")).starttime
    # In the host's pid namespace (--pid=host) the oldest process marks the start.
    starts = []
    for pid in ctx.cgroups.process_ids(ctx.paths):
        try:
            starts.append(parse_proc_stat(read_text(f"{proc_root}/{pid}/stat")).starttime)
        except (OSError, ValueError):
            continue  # exited while we looked
    if not starts:
        raise LookupError("container has no processes")
    return min(starts)


def container_uptime(host: Uptime, start_ticks: int, ticks_per_second: int, cpus: int, cpu_seconds: float) -> Uptime:
    up = max(0.0, host.up - start_ticks / ticks_per_second)
    # The real idle column sums over CPUs: time the visible CPUs were not used by us.
    return Uptime(up, max(0.0, up * cpus - cpu_seconds))


def figures(ctx: ViewContext) -> Uptime:
    """The file's figures; also what sysinfo(2) answers (uptime)."""
    host = parse_uptime(ctx.host.proc("uptime"))
    usage = ctx.cgroups.cpu_usage(ctx.paths)
    return container_uptime(
        host, _start_ticks(ctx), ctx.clock_ticks, len(ctx.visible_cpus()), (usage.user_ns + usage.system_ns) / 1e9
    )


def render(ctx: ViewContext) -> str:
    return render_uptime(figures(ctx))


VIEW = View("proc/uptime", proc_file("uptime"), render)
