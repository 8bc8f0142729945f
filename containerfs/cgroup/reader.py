"""Read a container's cgroup counters into the records of cgroup.records.

A container's cgroups are given as the map from controller to path that
/proc/PID/cgroup yields (procfs.process.parse_proc_cgroup); v2 uses the "" key.
Limits are read at the cgroup and at every ancestor: the smallest one applies.
One reader per layout (cgroup.v1, cgroup.v2) implements CgroupReader; open_reader
picks it once from the detected layout.  A hybrid host's controllers are v1's.

Two failures are told apart: CgroupGone (the cgroup's directory was removed: the
container is gone) and NotMounted (a hierarchy or controller the read needs is absent).
"""

from __future__ import annotations

from typing import Protocol

from containerfs.cgroup.common import CgroupGone, CgroupKey, CgroupPaths, NotMounted
from containerfs.cgroup.layout import Hierarchies, Layout
from containerfs.cgroup.records import CpuLimits, CpuUsage, IoCounters, MemoryCounters, PidsCounters
from containerfs.cgroup.v1 import V1Reader
from containerfs.cgroup.v2 import V2Reader
from containerfs.host.fsread import FileCache

__all__ = ["CgroupGone", "CgroupPaths", "CgroupReader", "NotMounted", "open_reader"]


class CgroupReader(Protocol):
    """One host's cgroup counters, whatever its layout; every method may raise CgroupGone or NotMounted."""

    @property
    def layout(self) -> Layout: ...

    def memory(self, paths: CgroupPaths) -> MemoryCounters: ...

    def memory_events(self, paths: CgroupPaths) -> dict[str, int]:
        """The MEMORY_EVENT_KEYS this kernel's memory.stat has, hierarchical; absent keys are left out."""
        ...

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        """Processes the OOM killer killed in the cgroup and its descendants; None: not counted."""
        ...

    def cpu_limits(self, paths: CgroupPaths) -> CpuLimits: ...

    def cpu_usage(self, paths: CgroupPaths) -> CpuUsage: ...

    def io(self, paths: CgroupPaths) -> IoCounters | None: ...

    def pids(self, paths: CgroupPaths) -> PidsCounters | None:
        """pids.current and the effective pids.max; None where the pids controller is off."""
        ...

    def thread_ids(self, paths: CgroupPaths) -> list[int]:
        """Every thread in the cgroup and its descendants."""
        ...

    def process_ids(self, paths: CgroupPaths) -> list[int]: ...

    def pressure(self, paths: CgroupPaths, resource: str) -> str | None:
        """The cgroup's RESOURCE.pressure text; None on v1/hybrid or where PSI is off."""
        ...

    def forget(self, paths: CgroupPaths) -> None:
        """Close the cached descriptors of cgroups that were removed."""
        ...

    def identity(self, paths: CgroupPaths) -> CgroupKey:
        """A hashable key naming the container these cgroups make up."""
        ...


def open_reader(
    hierarchies: Hierarchies, clock_ticks: int, files: FileCache, limit_seconds: float = 1.0
) -> CgroupReader:
    """The reader for the host's layout; a hybrid host's controllers are v1's."""
    reader = V2Reader if hierarchies.layout is Layout.V2 else V1Reader
    return reader(hierarchies, clock_ticks, files, limit_seconds)
