"""cgroup v2: one unified tree, every controller's files in the same directory."""

from __future__ import annotations

import errno
from fractions import Fraction

from containerfs.cgroup import files
from containerfs.cgroup.common import CgroupKey, CgroupPaths, ReaderBase, join, min_optional
from containerfs.cgroup.records import (
    MEMORY_EVENT_KEYS,
    MEMORY_STAT_KEYS,
    CpuUsage,
    IoCounters,
    IoDevice,
    MemoryCounters,
)


class V2Reader(ReaderBase):
    CPUSET_FILES = ("cpuset.cpus.effective", "cpuset.cpus")
    THREADS_FILE = "cgroup.threads"

    def _hierarchy(self, controller: str) -> str | None:
        return self.hierarchies.root

    def _path_key(self, controller: str) -> str:
        return ""

    def _hierarchy_dirs(self) -> list[tuple[str, str]]:
        return [("", self.hierarchies.root)]

    def identity(self, paths: CgroupPaths) -> CgroupKey:
        return (("", paths.get("", "/")),)

    def memory(self, paths: CgroupPaths) -> MemoryCounters:
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

    def memory_events(self, paths: CgroupPaths) -> dict[str, int]:
        # pswpin/pswpout joined memory.stat only in recent kernels: absent before.
        raw = files.parse_flat_keyed(self._read(paths, "memory", "memory.stat") or "")
        return {key: raw[key] for key in MEMORY_EVENT_KEYS if key in raw}

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        # Counted in the victim's cgroup and every ancestor, unless cgroup2 is mounted with
        # memory_localevents.
        text = self._read(paths, "memory", "memory.events")
        return None if text is None else files.parse_flat_keyed(text).get("oom_kill")

    def _quota(self, paths: CgroupPaths) -> Fraction | None:
        def quota(directory: str) -> Fraction | None:
            text = self.files.read_optional(f"{directory}/cpu.max")
            return None if text is None else files.parse_cpu_max(text)

        return min_optional(self._each_level(paths, "cpu", quota))

    def cpu_usage(self, paths: CgroupPaths) -> CpuUsage:
        # v2 has no per-cpu split.
        stat = files.parse_flat_keyed(self._required(paths, "cpu", "cpu.stat"))
        return CpuUsage(stat.get("user_usec", 0) * 1000, stat.get("system_usec", 0) * 1000, None)

    def io(self, paths: CgroupPaths) -> IoCounters | None:
        text = self._read(paths, "io", "io.stat")
        if text is None:
            return None
        return {
            dev: IoDevice(**{k: v for k, v in values.items() if k in IoDevice._fields})
            for dev, values in files.parse_io_stat(text).items()
        }

    def pressure(self, paths: CgroupPaths, resource: str) -> str | None:
        located = self._dir(paths, resource)
        if located is None:
            return None
        try:
            text = self.files.read_optional(join(*located, f"{resource}.pressure"))
        except OSError as err:
            # Missing with psi=0 or `cgroup.pressure` 0 (Linux 6.1+); some kernels keep
            # the files and answer EOPNOTSUPP instead.
            if err.errno == errno.EOPNOTSUPP:
                return None
            raise
        if text is None:
            self._check_present(*located)  # PSI off, unless the cgroup itself is gone
        return text
