"""/proc/stat: one cpuN line per visible CPU from the container's CPU time.

* user and system come from the container's cgroup (v1 cpuacct, v2 cpu.stat: lxcfs
  shows the host's lines on v2, #593).
* idle is the container's: each visible CPU's share of the container's age (its
  /proc/uptime, in ticks) less the container's use of it.  The host CPU's idle time
  would count the host's whole life and other tenants' idleness: every average since
  boot (top's first frame, vmstat's first line, iostat's first report) came out wrong.
* iowait, steal, irq, softirq, nice and guest are 0: the cgroup keeps none of them per
  container, and the host's would count other tenants' time.
* Tools take deltas (top, iostat, lxcfs #311 #500): no served counter ever goes below
  what was served before for the same container and CPU.
* procs_running/procs_blocked count the container's tasks (the load sampler's last
  count) plus the reader, which is running while it reads.
* intr, ctxt, processes and softirq have no per-cgroup counter on v1 or v2: they read 0
  (with the kernel's columns kept), not the host's (lxcfs copies them), because vmstat's
  in/cs and a fork rate would otherwise show the host's activity as the container's.
* btime stays the host's: ps computes every process's start time as btime plus its
  start ticks, which count from the host's boot (without a time namespace); a btime
  moved to the container's start would date every process in the future.
"""

from __future__ import annotations

from containerfs.cgroup.records import CpuUsage
from containerfs.procfs.stat import CpuTimes, parse_stat, render_stat
from containerfs.procfs.uptime import parse_uptime
from containerfs.views.base import View, ViewContext, proc_file
from containerfs.views.uptime import start_ticks

# Lines that count host-wide events since boot: zeros, columns kept.
_ZEROED = ("intr", "ctxt", "processes", "softirq")


def split_evenly(total: int, parts: int) -> list[int]:
    """total spread over parts; each share is monotonic in total."""
    return [(total + parts - 1 - i) // parts for i in range(parts)]


def container_cpu_lines(cpus: list[int], usage: CpuUsage, ticks_per_second: int, up_ticks: int) -> list[CpuTimes]:
    """Per visible CPU: the container's user and system time, idle the rest of up_ticks."""

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
    # The cgroup may have run before its init started (processes moved in): idle clamps at 0.
    return [CpuTimes(user=u, system=s, idle=max(0, up_ticks - u - s)) for u, s in zip(user, system)]


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


def zeroed(line: str) -> str:
    """A counter line with every number 0 and as many columns."""
    key, *values = line.split(" ")
    return " ".join([key, *("0" for _ in values)])


def other_lines(host_lines: list[str], running: int, blocked: int) -> list[str]:
    out = []
    for line in host_lines:
        key = line.split(" ", 1)[0]
        if key == "procs_running":
            line = f"procs_running {running}"
        elif key == "procs_blocked":
            line = f"procs_blocked {blocked}"
        elif key in _ZEROED:
            line = zeroed(line)
        out.append(line)
    return out


def render(ctx: ViewContext) -> str:
    host = parse_stat(ctx.host.proc("stat"))
    up = parse_uptime(ctx.host.proc("uptime")).up - start_ticks(ctx) / ctx.clock_ticks
    up_ticks = max(0, int(up * ctx.clock_ticks))
    lines = container_cpu_lines(ctx.visible_cpus(), ctx.cgroups.cpu_usage(ctx.paths), ctx.clock_ticks, up_ticks)
    state = ctx.state
    with state.lock:
        lines = never_backwards(lines, state.stat_floor)
        # Keep the floor of CPUs no longer shown, in case they come back.
        state.stat_floor = lines + state.stat_floor[len(lines) :]
        tasks = state.tasks
    # The sample was taken at another moment, when the reader rarely was running.
    return render_stat(lines, other_lines(host.other_lines, tasks.running + 1, tasks.blocked))


VIEW = View("proc/stat", proc_file("stat"), render)
