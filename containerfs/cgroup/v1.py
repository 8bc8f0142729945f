"""cgroup v1 (and the v1 controllers of a hybrid host): one hierarchy per controller."""

from __future__ import annotations

from fractions import Fraction

from containerfs.cgroup import files
from containerfs.cgroup.common import CgroupKey, CgroupPaths, ReaderBase, min_optional
from containerfs.cgroup.records import MEMORY_EVENT_KEYS, CpuUsage, IoCounters, IoDevice, MemoryCounters

# (v2 key, v1 hierarchical key, v1 local key)
_MEMORY_KEYS = [
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

_BLKIO_FILES = (
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
    "blkio.bfq.io_service_bytes_recursive",
    "blkio.bfq.io_serviced_recursive",
)


class V1Reader(ReaderBase):
    CPUSET_FILES = ("cpuset.effective_cpus", "cpuset.cpus")
    THREADS_FILE = "tasks"

    def _hierarchy(self, controller: str) -> str | None:
        return self.hierarchies.v1_dir(controller)

    def _path_key(self, controller: str) -> str:
        return controller

    def _hierarchy_dirs(self) -> list[tuple[str, str]]:
        return list(self.hierarchies.v1_dirs.items())

    def identity(self, paths: CgroupPaths) -> CgroupKey:
        return tuple(sorted((c, p) for c, p in paths.items() if c in self.hierarchies.v1_dirs))

    def memory(self, paths: CgroupPaths) -> MemoryCounters:
        usage = files.parse_int(self._required(paths, "memory", "memory.usage_in_bytes"))
        raw = files.parse_flat_keyed(self._read(paths, "memory", "memory.stat") or "")
        stat = {}
        for key, total_key, local_key in _MEMORY_KEYS:
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

    def memory_events(self, paths: CgroupPaths) -> dict[str, int]:
        # total_* includes sub-cgroups; without use_hierarchy only the local key exists.
        # v1 has no pswpin/pswpout, and workingset_activate/restore only on newer kernels.
        raw = files.parse_flat_keyed(self._read(paths, "memory", "memory.stat") or "")
        found = {key: raw.get("total_" + key, raw.get(key)) for key in MEMORY_EVENT_KEYS}
        return {key: value for key, value in found.items() if value is not None}

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        # memory.oom_control counts kills hierarchically since Linux 4.13; before, no oom_kill line.
        text = self._read(paths, "memory", "memory.oom_control")
        return None if text is None else files.parse_flat_keyed(text).get("oom_kill")

    def _quota(self, paths: CgroupPaths) -> Fraction | None:
        def quota(directory: str) -> Fraction | None:
            quota_text = self.files.read_optional(f"{directory}/cpu.cfs_quota_us")
            if quota_text is None or quota_text.strip() == "-1":
                return None
            period_text = self.files.read_optional(f"{directory}/cpu.cfs_period_us")
            return None if period_text is None else files.parse_v1_quota(quota_text, period_text)

        return min_optional(self._each_level(paths, "cpu", quota))

    def cpu_usage(self, paths: CgroupPaths) -> CpuUsage:
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

    def io(self, paths: CgroupPaths) -> IoCounters | None:
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

    def pressure(self, paths: CgroupPaths, resource: str) -> str | None:
        # v1 keeps no per-cgroup stall figures (the unified tree of a hybrid host may, but
        # its cgroups are not the ones the container's limits live in).
        return None
