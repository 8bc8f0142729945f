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
    reader: int = 0  # the host pid of the reading thread

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


class Overlay(NamedTuple):
    """A directory bound whole: its views, plus the host's other entries passed through.

    Lookups and attributes follow the host's tree (the kernel caches them for every
    reader alike); listings and contents are the reader's.
    """

    path: str  # below the mountpoint, e.g. "sys/devices/system/cpu"
    host_dir: Callable[[HostFiles], str]
    listed: Callable[[str, ViewContext], bool]  # whether an entry of the top directory is listed for the reader
    source: Callable[[str, ViewContext], str]  # the host file a path below the directory shows the reader


def proc_file(name: str) -> Callable[[HostFiles], str]:
    return lambda host: host.proc(name)
