"""/proc/stat: one cpuN line per visible CPU from the container's CPU time.

user and system come from the container's cgroup (v1 cpuacct, v2 cpu.stat: lxcfs shows
the host's lines on v2, #593).  A visible CPU's idle is the host CPU's elapsed time less
the container's use of it, so each line advances at wall-clock rate.  Tools take deltas
(top, iostat, lxcfs #311 #500): no served counter ever goes below what was served before.
"""

from __future__ import annotations

from containerfs.cgroup.records import CpuUsage
from containerfs.procfs.stat import CpuTimes, HostStat, parse_stat, render_stat
from containerfs.views.base import View, ViewContext, proc_file


def split_evenly(total: int, parts: int) -> list[int]:
    """total spread over parts; each share is monotonic in total."""
    return [(total + parts - 1 - i) // parts for i in range(parts)]


def container_cpu_lines(host: HostStat, cpus: list[int], usage: CpuUsage, ticks_per_second: int) -> list[CpuTimes]:
    def ticks(ns: int) -> int:
        return ns * ticks_per_second // 1_000_000_000

    count = len(cpus)
    if usage.per_cpu is not None and _covers(usage.per_cpu, cpus):
        user = [ticks(usage.per_cpu.get(cpu, (0, 0))[0]) for cpu in cpus]
        system = [ticks(usage.per_cpu.get(cpu, (0, 0))[1]) for cpu in cpus]
    else:
        # v2 has no per-CPU split, and a quota narrower than the cpuset spreads the work
        # of more CPUs than are shown: share the totals evenly.
        user = split_evenly(ticks(usage.user_ns), count)
        system = split_evenly(ticks(usage.system_ns), count)
    lines = []
    for i, cpu in enumerate(cpus):
        # A CPU missing from the host's file (offline since we looked): the average.
        host_cpu = host.times(f"cpu{cpu}")
        if host_cpu is not None:
            elapsed = host_cpu.total()
        else:
            everything = host.times("cpu") or CpuTimes()
            elapsed = everything.total() // max(1, len(host.cpu_fields) - 1)
        lines.append(CpuTimes(user=user[i], system=system[i], idle=max(0, elapsed - user[i] - system[i])))
    return lines


def _covers(per_cpu: dict[int, tuple[int, int]], cpus: list[int]) -> bool:
    """True when every CPU the container ran on is a shown one (nothing to fold)."""
    shown = set(cpus)
    return all(cpu in shown for cpu, (user, system) in per_cpu.items() if user or system)


def never_backwards(lines: list[CpuTimes], floor: list[CpuTimes]) -> list[CpuTimes]:
    """Each field at least what was served before for the same CPU."""
    return [
        CpuTimes(*(max(new, old) for new, old in zip(line, floor[i]))) if i < len(floor) else line
        for i, line in enumerate(lines)
    ]


def render(ctx: ViewContext) -> str:
    host = parse_stat(ctx.host.proc("stat"))
    cpus = ctx.visible_cpus()
    lines = container_cpu_lines(host, cpus, ctx.cgroups.cpu_usage(ctx.paths), ctx.clock_ticks)
    state = ctx.state
    with state.lock:
        lines = never_backwards(lines, state.stat_floor)
        # Keep the floor of CPUs no longer shown, in case they come back.
        state.stat_floor = lines + state.stat_floor[len(lines) :]
        tasks = state.tasks
    other = []
    for line in host.other_lines:
        key = line.split(" ", 1)[0]
        if key == "procs_running":
            line = f"procs_running {tasks.running}"
        elif key == "procs_blocked":
            line = f"procs_blocked {tasks.blocked}"
        other.append(line)
    return render_stat(lines, other)


VIEW = View("proc/stat", proc_file("stat"), render)
