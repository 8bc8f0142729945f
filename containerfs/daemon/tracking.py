"""Per-container state that outlives a single read: load averages and stat floors."""

from __future__ import annotations

import threading
from typing import NamedTuple

from containerfs.procfs.stat import CpuTimes

CgroupKey = tuple[tuple[str, str], ...]


class TaskCounts(NamedTuple):
    running: int  # state R
    blocked: int  # state D
    total: int
    last_pid: int


class ContainerState:
    def __init__(self, key: CgroupKey, cgroups: dict[str, str]) -> None:
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
        self._states: dict[CgroupKey, ContainerState] = {}

    def get(self, key: CgroupKey, cgroups: dict[str, str]) -> tuple[ContainerState, bool]:
        """The container's state and whether it was created by this call."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                return state, False
            state = self._states[key] = ContainerState(key, cgroups)
            return state, True

    def find(self, key: CgroupKey) -> ContainerState | None:
        """The state of a container that is tracked, without starting to track it."""
        with self._lock:
            return self._states.get(key)

    def all(self) -> list[ContainerState]:
        with self._lock:
            return list(self._states.values())

    def remove(self, key: CgroupKey) -> None:
        with self._lock:
            self._states.pop(key, None)

    def __len__(self) -> int:
        return len(self._states)
