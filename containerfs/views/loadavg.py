"""/proc/loadavg from the load sampler's per-container averages."""

from __future__ import annotations

from containerfs.procfs.loadavg import LoadAvg, render_loadavg
from containerfs.views.base import View, ViewContext, proc_file


def figures(ctx: ViewContext) -> LoadAvg:
    """The file's figures; also what sysinfo(2) answers (loads and procs)."""
    state = ctx.state
    with state.lock:
        averages, tasks = state.averages, state.tasks
    # Field 5 is the newest pid of the reader's pid namespace in the real file; the
    # container's highest host thread id is the nearest figure we hold.
    return LoadAvg(averages, tasks.running, tasks.total, tasks.last_pid)


def render(ctx: ViewContext) -> str:
    return render_loadavg(figures(ctx))


VIEW = View("proc/loadavg", proc_file("loadavg"), render)
