"""What the v1 and v2 readers share: locating a container's cgroup directories, walking
its ancestors for limits, listing its tasks, and the two ways a read can fail."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Optional, TypeVar

from containerfs.cgroup import files
from containerfs.cgroup.layout import Hierarchies, Layout
from containerfs.cgroup.records import CpuLimits, PidsCounters
from containerfs.host.errors import Unavailable
from containerfs.host.fsread import FileCache, read_optional
from containerfs.host.ttl import TtlCache

CgroupPaths = dict[str, str]
CgroupKey = tuple[tuple[str, str], ...]
T = TypeVar("T")
Limit = TypeVar("Limit", int, Fraction)


class CgroupGone(Unavailable):
    """The cgroup was removed: its directory no longer exists (ENOENT, ENODEV)."""


class NotMounted(Unavailable):
    """The hierarchy or controller a read needs is absent: not mounted, or not enabled here."""


def ancestors(path: str) -> Iterator[str]:
    """The cgroup path itself, then each parent up to and including the root."""
    while True:
        yield path
        if path in ("", "/"):
            return
        path = path.rsplit("/", 1)[0] or "/"


def min_optional(values: Iterator[Limit | None]) -> Limit | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


@functools.lru_cache(maxsize=512)
def join(base: str, path: str, name: str) -> str:
    """base/path/name for a cgroup path ("/" or "/a/b"); remembered, it is on every read.

    Bounded by the files of a few dozen busy containers: containers come and go, and the
    paths of gone ones must not pile up."""
    return f"{base}{path.rstrip('/')}/{name}"


def _exists(directory: str) -> bool:
    try:
        os.stat(directory)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV, errno.ENOTDIR):
            return False
        raise
    return True


# v1 hierarchies whose task lists are complete for a container, most common first (v2
# has one tree, found under any name).
_TASK_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


class ReaderBase:
    """The mechanics both layouts share; subclasses name the files."""

    CPUSET_FILES: tuple[str, ...] = ()  # the cpuset's CPUs, the effective set first
    THREADS_FILE = ""  # the file listing every thread of a cgroup

    def __init__(
        self, hierarchies: Hierarchies, clock_ticks: int, files: FileCache, limit_seconds: float = 1.0
    ) -> None:
        self.hierarchies = hierarchies
        self.clock_ticks = clock_ticks
        self.files = files
        # Limits are configuration, not counters: re-read at most once per limit_seconds,
        # which saves a walk over the ancestors on every read.
        self._byte_limits: TtlCache[int | None] = TtlCache(limit_seconds)
        self._cpu_limits: TtlCache[CpuLimits] = TtlCache(limit_seconds)

    @property
    def layout(self) -> Layout:
        return self.hierarchies.layout

    # -- what each layout decides ----------------------------------------------------

    def _hierarchy(self, controller: str) -> str | None:
        """The directory of the hierarchy holding controller, None where it is not mounted."""
        raise NotImplementedError

    def _path_key(self, controller: str) -> str:
        """The key of /proc/PID/cgroup's map naming the cgroup for controller."""
        raise NotImplementedError

    def _quota(self, paths: CgroupPaths) -> Fraction | None:
        raise NotImplementedError

    # -- locating files --------------------------------------------------------------

    def _dir(self, paths: CgroupPaths, controller: str) -> tuple[str, str] | None:
        """(hierarchy directory, cgroup path) for a controller, or None if not mounted."""
        base = self._hierarchy(controller)
        if base is None:
            return None
        path = paths.get(self._path_key(controller))
        if path is None:
            raise NotMounted(f"the process has no cgroup in the {controller} hierarchy")
        return base, path

    def _read(self, paths: CgroupPaths, controller: str, name: str) -> str | None:
        located = self._dir(paths, controller)
        return None if located is None else self.files.read_optional(join(*located, name))

    def _required(self, paths: CgroupPaths, controller: str, name: str) -> str:
        located = self._dir(paths, controller)
        if located is None:
            raise NotMounted(f"the {controller} controller is not mounted")
        try:
            return self.files.read(join(*located, name))
        except FileNotFoundError:
            self._check_present(*located)
            raise NotMounted(f"{name} is absent: the {controller} controller is off for {located[1]}") from None

    def _check_present(self, base: str, path: str) -> None:
        """Raise CgroupGone if the cgroup's directory is gone, NotMounted if its hierarchy is."""
        if not _exists(base):
            raise NotMounted(f"the hierarchy {base} is not mounted")
        if not _exists(base + path.rstrip("/")):
            raise CgroupGone(f"cgroup {path} is gone")

    def _each_level(
        self, paths: CgroupPaths, controller: str, read: Callable[[str], Optional[T]]
    ) -> Iterator[T | None]:
        located = self._dir(paths, controller)
        if located is None:
            return
        base, path = located
        for level in ancestors(path):
            if level == "/":
                # The root cgroup cannot be limited (v2 has no limit files there, v1
                # refuses writes) and its cpuset is every CPU: nothing to learn.
                return
            yield read(base + level)

    def _limit_min(self, paths: CgroupPaths, controller: str, name: str) -> int | None:
        key = (name, paths.get(self._path_key(controller)))
        return self._byte_limits.get(key, lambda: self._read_limit_min(paths, controller, name))

    def _read_limit_min(self, paths: CgroupPaths, controller: str, name: str) -> int | None:
        def limit(directory: str) -> int | None:
            text = self.files.read_optional(f"{directory}/{name}")
            # Absent where the parent does not enable the controller: no limit there.
            return None if text is None else files.parse_limit(text)

        return min_optional(self._each_level(paths, controller, limit))

    # -- shared readings -------------------------------------------------------------

    def cpu_limits(self, paths: CgroupPaths) -> CpuLimits:
        key = (paths.get(self._path_key("cpuset")), paths.get(self._path_key("cpu")))
        return self._cpu_limits.get(key, lambda: CpuLimits(self._cpuset(paths), self._quota(paths)))

    def _cpuset(self, paths: CgroupPaths) -> list[int] | None:
        def cpus(directory: str) -> list[int] | None:
            for name in self.CPUSET_FILES:
                text = self.files.read_optional(f"{directory}/{name}")
                if text and text.strip():
                    return files.parse_cpu_list(text)
            return None

        # v2's cpuset.cpus may be empty (inherit) and the controller may be off in a
        # subtree: the nearest ancestor that names CPUs decides.
        for found in self._each_level(paths, "cpuset", cpus):
            if found:
                return found
        return None

    def pids(self, paths: CgroupPaths) -> PidsCounters | None:
        """pids.current and the effective pids.max; None where the pids controller is off."""
        current = self._read(paths, "pids", "pids.current")
        if current is None:
            return None
        return PidsCounters(files.parse_int(current), self._limit_min(paths, "pids", "pids.max"))

    def thread_ids(self, paths: CgroupPaths) -> list[int]:
        """Every thread in the cgroup and its descendants."""
        return self._walk_ids(paths, self.THREADS_FILE)

    def process_ids(self, paths: CgroupPaths) -> list[int]:
        return self._walk_ids(paths, "cgroup.procs")

    def _walk_ids(self, paths: CgroupPaths, name: str) -> list[int]:
        located = None
        for controller in _TASK_CONTROLLERS:
            located = self._dir(paths, controller)
            if located is not None:
                break
        if located is None:
            raise NotMounted("no hierarchy to list tasks from")
        base, path = located
        top = base + path.rstrip("/")
        if not os.path.isdir(top):
            self._check_present(base, path)
        ids: list[int] = []
        for directory, _, _ in os.walk(top):
            text = read_optional(os.path.join(directory, name))
            if text:
                ids.extend(files.parse_ids(text))
        return ids

    def forget(self, paths: CgroupPaths) -> None:
        """Close the cached descriptors of cgroups that were removed."""
        for key, base in self._hierarchy_dirs():
            path = paths.get(key)
            if path and path != "/":
                self.files.forget_under(base + path)

    def _hierarchy_dirs(self) -> list[tuple[str, str]]:
        """(key in /proc/PID/cgroup's map, hierarchy directory) for every hierarchy read."""
        raise NotImplementedError

    def identity(self, paths: CgroupPaths) -> CgroupKey:
        """A hashable key naming the container these cgroups make up."""
        raise NotImplementedError
