"""/proc/pressure/{cpu,memory,io}: the container's own stall figures.

On cgroup v2 the container's cgroup keeps them (cpu.pressure, memory.pressure,
io.pressure, counting its sub-cgroups).  On v1 and hybrid hosts, and where PSI is off
(psi=0, or `cgroup.pressure` 0 on Linux 6.1+), the container reads the host's file: no
per-container figure exists.  lxcfs does not serve these files.
"""

from __future__ import annotations

from containerfs.procfs.pressure import parse_pressure, render_pressure
from containerfs.views.base import View, ViewContext, proc_file


def render(ctx: ViewContext, resource: str) -> str:
    text = ctx.cgroups.pressure(ctx.paths, resource)
    if text is None:
        return ctx.host.proc(f"pressure/{resource}")
    return render_pressure(parse_pressure(text))


def view(resource: str) -> View:
    return View(f"proc/pressure/{resource}", proc_file(f"pressure/{resource}"), lambda ctx: render(ctx, resource))
