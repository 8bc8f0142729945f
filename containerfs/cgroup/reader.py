"""Read a container's cgroup counters into the records of cgroup.records.

A container's cgroups are given as the map from controller to path that
/proc/PID/cgroup yields (procfs.process.parse_proc_cgroup); v2 uses the "" key.
Limits are read at the cgroup and at every ancestor: the smallest one applies.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Optional, TypeVar

from containerfs.cgroup import files
from containerfs.cgroup.layout import Hierarchies, Layout
from containerfs.cgroup.records import (
    MEMORY_STAT_KEYS,
    CpuLimits,
    CpuUsage,
    IoCounters,
    IoDevice,
    MemoryCounters,
    PidsCounters,
)
from containerfs.host.fsread import FileCache, read_optional
from containerfs.host.ttl import TtlCache

CgroupPaths = dict[str, str]
T = TypeVar("T")
Limit = TypeVar("Limit", int, Fraction)


class CgroupGone(LookupError):
    """The process has no cgroup in a hierarchy the view needs."""


def ancestors(path: str) -> Iterator[str]:
    """The cgroup path itself, then each parent up to and including the root."""
    while True:
        yield path
        if path in ("", "/"):
            return
        path = path.rsplit("/", 1)[0] or "/"


def _min_optional(values: Iterator[Limit | None]) -> Limit | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class CgroupReader:
    """Reads one host's cgroup files; the layout decides which files."""

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

    # -- locating files ------------------------------------------------------------

    def _dir(self, paths: CgroupPaths, controller: str) -> tuple[str, str] | None:
        """(hierarchy directory, cgroup path) for a controller, or None if not mounted."""
        if self.layout is Layout.V2:
            path = paths.get("")
            if path is None:
                raise CgroupGone("process has no v2 cgroup")
            return self.hierarchies.root, path
        base = self.hierarchies.v1_dir(controller)
        if base is None:
            return None
        path = paths.get(controller)
        if path is None:
            raise CgroupGone(f"process has no {controller} cgroup")
        return base, path

    def _file(self, paths: CgroupPaths, controller: str, name: str) -> str | None:
        located = self._dir(paths, controller)
        if located is None:
            return None
        return _join(*located, name)

    def _read(self, paths: CgroupPaths, controller: str, name: str) -> str | None:
        path = self._file(paths, controller, name)
        return None if path is None else self.files.read_optional(path)

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
        key = (name, paths.get(controller if self.layout is not Layout.V2 else ""))
        return self._byte_limits.get(key, lambda: self._read_limit_min(paths, controller, name))

    def _read_limit_min(self, paths: CgroupPaths, controller: str, name: str) -> int | None:
        def limit(directory: str) -> int | None:
            text = self.files.read_optional(f"{directory}/{name}")
            # Absent where the parent does not enable the controller: no limit there.
            return None if text is None else files.parse_limit(text)

        return _min_optional(self._each_level(paths, controller, limit))

    # -- memory ----------------------------------------------------------------------

    def memory(self, paths: CgroupPaths) -> MemoryCounters:
        if self.layout is Layout.V2:
            return self._memory_v2(paths)
        return self._memory_v1(paths)

    def _memory_v2(self, paths: CgroupPaths) -> MemoryCounters:
        usage = files.parse_int(self._required(paths, "memory", "memory.current"))
        raw = files.parse_flat_keyed(self._read(paths, "memory", "memory.stat") or "")
        stat = {key: raw[key] for key in MEMORY_STAT_KEYS if key in raw}
        swap_current = self._read(paths, "memory", "memory.swap.current")
        return MemoryCounters(
            limit=self._limit_min(paths, "memory", "memory.max"),
            usage=usage,
            stat=stat,
            swap_accounted=swap_current is not None,
            swap_limit=self._limit_min(paths, "memory", "memory.swap.max"),
            swap_usage=files.parse_int(swap_current) if swap_current is not None else 0,
        )

    def _memory_v1(self, paths: CgroupPaths) -> MemoryCounters:
        usage = files.parse_int(self._required(paths, "memory", "memory.usage_in_bytes"))
        raw = files.parse_flat_keyed(self._read(paths, "memory", "memory.stat") or "")
        stat = {}
        for key, total_key, local_key in _V1_MEMORY_KEYS:
            # total_* is hierarchical (includes sub-cgroups); without use_hierarchy only the
            # local counter exists.
            value = raw.get(total_key, raw.get(local_key))
            if value is not None:
                stat[key] = value
        # The kernel reports the minimum over the ancestors in memory.stat, saving a walk.
        if "hierarchical_memory_limit" in raw:
            limit = files.limit_from_bytes(raw["hierarchical_memory_limit"])
        else:
            limit = self._limit_min(paths, "memory", "memory.limit_in_bytes")
        memsw_usage = self._read(paths, "memory", "memory.memsw.usage_in_bytes")
        if memsw_usage is None:  # swapaccount=0 or CONFIG_MEMCG_SWAP off
            return MemoryCounters(limit, usage, stat, False, None, 0)
        if "hierarchical_memsw_limit" in raw:
            memsw_limit = files.limit_from_bytes(raw["hierarchical_memsw_limit"])
        else:
            memsw_limit = self._limit_min(paths, "memory", "memory.memsw.limit_in_bytes")
        # memsw counts memory plus swap: the swap part is what memsw allows beyond memory.
        swap_limit = None if memsw_limit is None or limit is None else max(0, memsw_limit - limit)
        swap_usage = max(0, files.parse_int(memsw_usage) - usage)
        return MemoryCounters(limit, usage, stat, True, swap_limit, swap_usage)

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        """Processes the OOM killer killed in the cgroup and its descendants; None: not counted.

        The kernel counts a kill in the victim's cgroup and every ancestor (v2 memory.events
        unless mounted with memory_localevents; v1 memory.oom_control since Linux 4.13).
        """
        name = "memory.events" if self.layout is Layout.V2 else "memory.oom_control"
        text = self._read(paths, "memory", name)
        if text is None:
            return None
        return files.parse_flat_keyed(text).get("oom_kill")

    def _required(self, paths: CgroupPaths, controller: str, name: str) -> str:
        path = self._file(paths, controller, name)
        if path is None:
            raise CgroupGone(f"the {controller} controller is not mounted")
        return self.files.read(path)

    # -- cpu -------------------------------------------------------------------------

    def cpu_limits(self, paths: CgroupPaths) -> CpuLimits:
        key = (paths.get(""),) if self.layout is Layout.V2 else (paths.get("cpuset"), paths.get("cpu"))
        return self._cpu_limits.get(key, lambda: CpuLimits(self._cpuset(paths), self._quota(paths)))

    def _cpuset(self, paths: CgroupPaths) -> list[int] | None:
        if self.layout is Layout.V2:
            names = ("cpuset.cpus.effective", "cpuset.cpus")
        else:
            names = ("cpuset.effective_cpus", "cpuset.cpus")

        def cpus(directory: str) -> list[int] | None:
            for name in names:
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

    def _quota(self, paths: CgroupPaths) -> Fraction | None:
        if self.layout is Layout.V2:

            def quota(directory: str) -> Fraction | None:
                text = self.files.read_optional(f"{directory}/cpu.max")
                return None if text is None else files.parse_cpu_max(text)

        else:

            def quota(directory: str) -> Fraction | None:
                quota_text = self.files.read_optional(f"{directory}/cpu.cfs_quota_us")
                if quota_text is None or quota_text.strip() == "-1":
                    return None
                period_text = self.files.read_optional(f"{directory}/cpu.cfs_period_us")
                return None if period_text is None else files.parse_v1_quota(quota_text, period_text)

        return _min_optional(self._each_level(paths, "cpu", quota))

    def cpu_usage(self, paths: CgroupPaths) -> CpuUsage:
        if self.layout is Layout.V2:
            stat = files.parse_flat_keyed(self._required(paths, "cpu", "cpu.stat"))
            return CpuUsage(stat.get("user_usec", 0) * 1000, stat.get("system_usec", 0) * 1000, None)
        usage_all = self._read(paths, "cpuacct", "cpuacct.usage_all")
        if usage_all is not None:
            per_cpu = files.parse_usage_all(usage_all)
        else:
            # usage_all arrived in Linux 4.16; the per-cpu user/sys files in 4.13.
            user = self._read(paths, "cpuacct", "cpuacct.usage_percpu_user")
            system = self._read(paths, "cpuacct", "cpuacct.usage_percpu_sys")
            if user is None or system is None:
                return self._cpuacct_stat(paths)
            per_cpu = dict(enumerate(zip(files.parse_percpu(user), files.parse_percpu(system))))
        return CpuUsage(sum(u for u, _ in per_cpu.values()), sum(s for _, s in per_cpu.values()), per_cpu)

    def _cpuacct_stat(self, paths: CgroupPaths) -> CpuUsage:
        stat = files.parse_flat_keyed(self._required(paths, "cpuacct", "cpuacct.stat"))
        to_ns = 1_000_000_000 // self.clock_ticks
        return CpuUsage(stat.get("user", 0) * to_ns, stat.get("system", 0) * to_ns, None)

    # -- io --------------------------------------------------------------------------

    def io(self, paths: CgroupPaths) -> IoCounters | None:
        if self.layout is Layout.V2:
            text = self._read(paths, "io", "io.stat")
            if text is None:
                return None
            return {
                dev: IoDevice(**{k: v for k, v in values.items() if k in IoDevice._fields})
                for dev, values in files.parse_io_stat(text).items()
            }
        return self._io_v1(paths)

    def _io_v1(self, paths: CgroupPaths) -> IoCounters | None:
        texts = {name: self._read(paths, "blkio", name) for name in _BLKIO_FILES}
        if all(text is None for text in texts.values()):
            return None
        devices: IoCounters = {}
        # Throttle counters only move where a throttle rule exists, bfq ones only under
        # the bfq scheduler: per device and field, whichever saw more is the better count.
        for prefix in ("blkio.throttle.", "blkio.bfq."):
            bytes_ = files.parse_blkio(texts[prefix + "io_service_bytes_recursive"] or "")
            ios = files.parse_blkio(texts[prefix + "io_serviced_recursive"] or "")
            for dev in set(bytes_) | set(ios):
                b, n = bytes_.get(dev, {}), ios.get(dev, {})
                seen = IoDevice(
                    b.get("Read", 0),
                    b.get("Write", 0),
                    n.get("Read", 0),
                    n.get("Write", 0),
                    b.get("Discard", 0),
                    n.get("Discard", 0),
                )
                old = devices.get(dev, IoDevice())
                devices[dev] = IoDevice(*(max(x, y) for x, y in zip(old, seen)))
        return devices

    # -- pressure --------------------------------------------------------------------

    def pressure(self, paths: CgroupPaths, resource: str) -> str | None:
        """The cgroup's RESOURCE.pressure text; None on v1/hybrid or where PSI is off."""
        if self.layout is not Layout.V2:
            return None
        try:
            # Missing with psi=0 or `cgroup.pressure` 0 (Linux 6.1+); some kernels
            # keep the files and answer EOPNOTSUPP instead.
            return self._read(paths, resource, f"{resource}.pressure")
        except OSError as err:
            if err.errno == errno.EOPNOTSUPP:
                return None
            raise

    # -- tasks -----------------------------------------------------------------------

    def pids(self, paths: CgroupPaths) -> PidsCounters | None:
        """pids.current and the effective pids.max; None where the pids controller is off."""
        current = self._read(paths, "pids", "pids.current")
        if current is None:
            return None
        return PidsCounters(files.parse_int(current), self._limit_min(paths, "pids", "pids.max"))

    def thread_ids(self, paths: CgroupPaths) -> list[int]:
        """Every thread in the cgroup and its descendants."""
        return self._walk_ids(paths, "cgroup.threads" if self.layout is Layout.V2 else "tasks")

    def process_ids(self, paths: CgroupPaths) -> list[int]:
        return self._walk_ids(paths, "cgroup.procs")

    def _walk_ids(self, paths: CgroupPaths, name: str) -> list[int]:
        located = None
        for controller in _TASK_CONTROLLERS:
            located = self._dir(paths, controller)
            if located is not None:
                break
        if located is None:
            raise CgroupGone("no hierarchy to list tasks from")
        base, path = located
        top = base + path.rstrip("/")
        if not os.path.isdir(top):
            raise CgroupGone(f"cgroup {path} is gone")
        ids: list[int] = []
        for directory, _, _ in os.walk(top):
            text = read_optional(os.path.join(directory, name))
            if text:
                ids.extend(int(v) for v in text.split())
        return ids

    def forget(self, paths: CgroupPaths) -> None:
        """Close the cached descriptors of cgroups that were removed."""
        if self.layout is Layout.V2:
            located = [(self.hierarchies.root, paths.get(""))]
        else:
            located = [(base, paths.get(controller)) for controller, base in self.hierarchies.v1_dirs.items()]
        for base, path in located:
            if path and path != "/":
                self.files.forget_under(base + path)

    def identity(self, paths: CgroupPaths) -> tuple[tuple[str, str], ...]:
        """A hashable key naming the container these cgroups make up."""
        if self.layout is Layout.V2:
            return (("", paths.get("", "/")),)
        return tuple(sorted((c, p) for c, p in paths.items() if c in self.hierarchies.v1_dirs))


# (v2 key, v1 hierarchical key, v1 local key)
_V1_MEMORY_KEYS = [
    (key, "total_" + v1_key, v1_key)
    for key, v1_key in {
        "anon": "rss",
        "file": "cache",
        "shmem": "shmem",
        "file_mapped": "mapped_file",
        "file_dirty": "dirty",
        "file_writeback": "writeback",
        "anon_thp": "rss_huge",
        "active_anon": "active_anon",
        "inactive_anon": "inactive_anon",
        "active_file": "active_file",
        "inactive_file": "inactive_file",
        "unevictable": "unevictable",
        "swapcached": "swapcached",
    }.items()
]


@functools.lru_cache(maxsize=65536)
def _join(base: str, path: str, name: str) -> str:
    """base/path/name for a cgroup path ("/" or "/a/b"); remembered, it is on every read."""
    return f"{base}{path.rstrip('/')}/{name}"


_BLKIO_FILES = (
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
    "blkio.bfq.io_service_bytes_recursive",
    "blkio.bfq.io_serviced_recursive",
)
# v1 hierarchies whose task lists are complete for a container, most common first.
_TASK_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
