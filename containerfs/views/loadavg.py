"""/proc/loadavg from the load sampler's per-container averages.

Field 5 is the pid the kernel allocated last in the reader's pid namespace.  Pids grow
until they wrap, so it is taken as the larger of the reader's own pid and the pid, in
the reader's namespace, of the container's highest task at the last sample (a host pid
would name nothing the container can see).
"""

from __future__ import annotations

from containerfs.host.proc import ProcFS
from containerfs.procfs.loadavg import LoadAvg, render_loadavg
from containerfs.views.base import View, ViewContext, proc_file


def namespace_last_pid(reader_nspid: list[int], task_nspid: list[int] | None) -> int:
    """The newest pid the reader's namespace shows, from the reader's and a task's NSpid."""
    depth = len(reader_nspid)
    seen = [reader_nspid[-1]]
    if task_nspid is not None and len(task_nspid) >= depth:
        seen.append(task_nspid[depth - 1])
    return max(seen)


def _nspid(ctx: ViewContext, pid: int) -> list[int] | None:
    try:
        return ProcFS(ctx.host.proc_root).process(pid).status().nspid
    except (OSError, ValueError):
        return None  # exited since the sample (ProcessGone), or a kernel without NSpid


def figures(ctx: ViewContext) -> LoadAvg:
    """The file's figures; also what sysinfo(2) answers (loads and procs)."""
    state = ctx.state
    with state.lock:
        averages, tasks = state.averages, state.tasks
    reader = _nspid(ctx, ctx.reader) if ctx.reader else None
    last_pid = tasks.last_pid
    if reader is not None:
        last_pid = namespace_last_pid(reader, _nspid(ctx, tasks.last_pid) if tasks.last_pid else None)
    return LoadAvg(averages, tasks.running, tasks.total, last_pid)


def render(ctx: ViewContext) -> str:
    return render_loadavg(figures(ctx))


VIEW = View("proc/loadavg", proc_file("loadavg"), render)
