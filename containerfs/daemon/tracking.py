"""Per-container state that outlives a single read: load averages and stat floors.

A container is its cgroup directories, not their paths: `docker restart` and
restart=always recreate the same path, and the new container must start from zero load
and its own counters.  The key pairs each path with the directory's inode (st_dev,
st_ino; on v2 the inode number is the cgroup id), so a recreated directory is a new key.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import NamedTuple

from containerfs.cgroup.common import NotMounted
from containerfs.cgroup.layout import Hierarchies, Layout
from containerfs.procfs.stat import CpuTimes

# (controller, path, st_dev, st_ino) for the controllers that name the container.
StateKey = tuple[tuple[str, str, int, int], ...]
# The v1 controllers whose counters the state accumulates (stat floors, load).
_V1_IDENTITY = ("memory", "cpu", "cpuacct")


@functools.lru_cache(maxsize=64)
def _real(hierarchy: str) -> str:
    # /sys/fs/cgroup/cpu and /cpuacct are links to one cpu,cpuacct mount, fixed at boot.
    return os.path.realpath(hierarchy)


def identity(hierarchies: Hierarchies, paths: dict[str, str]) -> StateKey:
    """The container these cgroups make up, as of now; raises OSError if a directory is gone."""
    if hierarchies.layout is Layout.V2:
        located = [("", hierarchies.root, paths.get("", "/"))]
    else:
        located = []
        for controller in _V1_IDENTITY:
            base = hierarchies.v1_dir(controller)
            path = paths.get(controller)
            if base is not None and path is not None:
                located.append((controller, base, path))
    key = []
    seen: dict[str, os.stat_result] = {}  # co-mounted controllers (cpu,cpuacct) share a directory
    for controller, base, path in located:
        directory = _real(base).rstrip("/") + "/" + path.lstrip("/")
        try:
            st = seen.get(directory) or seen.setdefault(directory, os.stat(directory))
        except FileNotFoundError:
            if not os.path.isdir(base):
                # The hierarchy itself is absent (unmounted), not the container's cgroup.
                raise NotMounted(f"no cgroup hierarchy at {base}") from None
            raise
        key.append((controller, path, st.st_dev, st.st_ino))
    return tuple(key)


def _paths(key: StateKey) -> tuple[tuple[str, str], ...]:
    return tuple((controller, path) for controller, path, _, _ in key)


class TaskCounts(NamedTuple):
    running: int  # state R
    blocked: int  # state D
    total: int
    last_pid: int


class ContainerState:
    def __init__(self, key: StateKey, cgroups: dict[str, str]) -> None:
        self.key = key
        self.cgroups = cgroups
        self.lock = threading.Lock()
        self.averages = (0, 0, 0)  # fixed-point 1/5/15-minute load
        self.tasks = TaskCounts(0, 0, 0, 0)
        # Last /proc/stat cpu lines served, so no counter ever goes backwards.
        self.stat_floor: list[CpuTimes] = []


class StateRegistry:
    """Containers seen by a reader; the load sampler walks and prunes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[StateKey, ContainerState] = {}
        self._by_paths: dict[tuple[tuple[str, str], ...], StateKey] = {}

    def get(self, key: StateKey, cgroups: dict[str, str]) -> tuple[ContainerState, bool, bool]:
        """The container's state, whether this call created it, and whether that replaced
        the state of an older container at the same paths (whose caches are stale)."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                return state, False, False
            paths = _paths(key)
            old = self._by_paths.get(paths)
            if old is not None:
                self._states.pop(old, None)
            self._by_paths[paths] = key
            state = self._states[key] = ContainerState(key, cgroups)
            return state, True, old is not None

    def find(self, key: StateKey) -> ContainerState | None:
        """The state of a container that is tracked, without starting to track it."""
        with self._lock:
            return self._states.get(key)

    def all(self) -> list[ContainerState]:
        with self._lock:
            return list(self._states.values())

    def remove(self, key: StateKey) -> None:
        with self._lock:
            self._states.pop(key, None)
            if self._by_paths.get(_paths(key)) == key:
                del self._by_paths[_paths(key)]

    def __len__(self) -> int:
        return len(self._states)
