"""The CPUs a container is shown: one count and one numbering for cpuinfo, stat and online."""

from __future__ import annotations

import math

from containerfs.cgroup.records import CpuLimits


def visible_cpus(host_cpus: list[int], limits: CpuLimits, use_quota: bool) -> list[int]:
    """Host CPU ids shown to the container as cpu0..cpuN-1, in that order.

    The cpuset (intersected with the host's online CPUs) bounds the count; with use_quota
    the CFS quota does too, rounded up so that a 1.5-CPU quota shows 2 CPUs.
    """
    allowed = host_cpus
    if limits.cpus is not None:
        cpuset = set(limits.cpus)
        # A cpuset naming only offline CPUs cannot run anything; showing the host is the
        # lesser lie than showing zero CPUs.
        allowed = [cpu for cpu in host_cpus if cpu in cpuset] or host_cpus
    count = len(allowed)
    if use_quota and limits.quota is not None:
        count = min(count, max(1, math.ceil(limits.quota)))
    return allowed[:count]
