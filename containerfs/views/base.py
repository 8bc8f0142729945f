"""What every view gets and provides."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from containerfs.cgroup.layout import Layout
from containerfs.cgroup.reader import CgroupReader
from containerfs.containers.cpus import visible_cpus
from containerfs.containers.resolve import Container
from containerfs.daemon.tracking import ContainerState
from containerfs.host.files import HostFiles


class ViewContext(NamedTuple):
    host: HostFiles
    cgroups: CgroupReader
    container: Container
    state: ContainerState
    use_quota: bool
    clock_ticks: int

    @property
    def paths(self) -> dict[str, str]:
        return self.container.cgroups

    @property
    def v1(self) -> bool:
        return self.cgroups.layout is not Layout.V2

    def visible_cpus(self) -> list[int]:
        """Host CPU ids shown as cpu0..cpuN-1."""
        return visible_cpus(self.host.online_cpus(), self.cgroups.cpu_limits(self.paths), self.use_quota)


class View(NamedTuple):
    path: str  # below the mountpoint, e.g. "proc/meminfo"
    host_content: Callable[[HostFiles], str]  # what a host process reads
    render: Callable[[ViewContext], str]  # what a container process reads


def proc_file(name: str) -> Callable[[HostFiles], str]:
    return lambda host: host.proc(name)
