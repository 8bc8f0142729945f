"""What `containerfs status` may know of the running daemon: one record of copied figures.

status reads the daemon through this record only, never through the core's objects:
the record is built in the control thread from counters the FUSE loop and the sampler
keep, and nothing in it lets status reach back into them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from containerfs.cgroup.common import CgroupKey
from containerfs.cgroup.layout import Hierarchies
from containerfs.daemon.latency import Summary

if TYPE_CHECKING:  # status imports this module, and never the core
    from containerfs.daemon.core import ContainerFS


class Reads(NamedTuple):
    renders: int  # container readers served their view
    host_reads: int  # host readers served the host's file
    fallbacks: int  # container readers served the host's file after an expected failure
    errors: int  # bugs and broken hosts
    last_error: float | None  # time.monotonic() of the latest error


class Sampling(NamedTuple):
    tracked: int  # containers whose load is sampled
    passes: int
    cpu_ns: int
    last_pass_ns: int | None


class DaemonReport(NamedTuple):
    proc_root: str
    sys_root: str
    use_quota: bool
    hierarchies: Hierarchies
    clock_ticks: int
    reads: Reads
    latency: Summary
    sampling: Sampling
    loads: dict[CgroupKey, tuple[int, int, int]]  # fixed-point 1/5/15-minute averages per tracked container


def daemon_report(fs: ContainerFS) -> DaemonReport:
    stats, sampler, options = fs.stats, fs.sampler, fs.options
    loads = {}
    for state in fs.registry.all():
        with state.lock:
            # By path, as status names containers; the registry holds one state per path.
            loads[fs.cgroups.identity(state.cgroups)] = state.averages
    return DaemonReport(
        options.proc_root,
        options.sys_root,
        options.use_quota,
        fs.hierarchies,
        fs.clock_ticks,
        Reads(stats.renders, stats.host_reads, stats.fallbacks, stats.errors, stats.last_error),
        fs.latency.summary(),
        Sampling(len(fs.registry), sampler.passes, sampler.cpu_ns, sampler.last_pass_ns),
        loads,
    )
