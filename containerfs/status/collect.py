"""What the daemon answers on its control socket: its own figures and every container's.

Runs in the control thread, beside the FUSE loop: it reads through its own descriptors
(closed after each answer) and its own resolver, and only reads the daemon's shared state
(counters, the load sampler's averages).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from containerfs import __version__
from containerfs.cgroup.reader import CgroupReader, open_reader
from containerfs.containers.cpus import visible_cpus
from containerfs.containers.discover import ContainerRecord, discover
from containerfs.containers.resolve import Resolver
from containerfs.daemon.core import ContainerFS
from containerfs.daemon.tracking import CgroupKey
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache, read_text
from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, mount_at, mount_source, mounts_of
from containerfs.inject.plan import visible_views
from containerfs.procfs.loadavg import FIXED_1
from containerfs.procfs.mountinfo import Mount
from containerfs.procfs.process import parse_proc_stat
from containerfs.procfs.uptime import parse_uptime
from containerfs.status.model import (
    SCHEMA,
    Container,
    Cpu,
    Daemon,
    Latency,
    Load,
    Memory,
    Oom,
    Pids,
    Reads,
    SamplerCost,
    Status,
    Swap,
    Views,
    to_json,
)
from containerfs.views.registry import VIEWS

T = TypeVar("T")
# Enough descriptors for one container's files; all are closed after each answer.
_OPEN_FILES = 64


def count_views(mounts: list[Mount], source: str, dev: str | None) -> Views:
    """This mountpoint's views in a mount table: served by the daemon's mount (dev), or stale.

    A view's source names its daemon's mountpoint; a view from that mountpoint on another
    device was bound from a daemon that is gone.  Views of other mountpoints are not ours.
    """
    views = visible_views(mounts, source)
    live = sum(mount.dev == dev for mount in views)
    return Views(live, len(views) - live, len(VIEWS))


class OomWatch:
    """When each container's OOM kill count last rose, as seen by successive status calls."""

    def __init__(self) -> None:
        self._seen: dict[CgroupKey, tuple[int, float | None]] = {}

    def observe(self, key: CgroupKey, kills: int, now: float, uptime: float | None) -> float | None:
        """Seconds since the count rose, None if it never did while watched."""
        previous = self._seen.get(key)
        if previous is None:
            # First sight: any kills happened since the container started, at the earliest.
            last = now - uptime if kills and uptime is not None else None
        else:
            count, last = previous
            if kills > count:
                last = now
        self._seen[key] = (kills, last)
        return None if last is None else now - last

    def keep_only(self, keys: set[CgroupKey]) -> None:
        """Forget containers that are gone."""
        self._seen = {key: value for key, value in self._seen.items() if key in keys}


def _optional(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except (OSError, ValueError, LookupError):
        return None  # a controller that is off, a file this kernel lacks, a cgroup that went away


class StatusCollector:
    def __init__(self, fs: ContainerFS, mountpoint: str, libfuse: str, own_mountinfo: str = OWN_MOUNTINFO):
        self.fs = fs
        self.mountpoint = mountpoint
        self.libfuse = libfuse
        # The daemon's real mount table: its mount is real even over injected roots.
        self.own_mountinfo = own_mountinfo
        self.source = mount_source(mountpoint)
        self.started = time.monotonic()
        self.resolver = Resolver(fs.options.proc_root)
        self.oom = OomWatch()

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """The control socket's handler."""
        if message.get("request") != "status":
            return {"ok": False, "error": f"unknown request {message.get('request')!r}"}
        return {"ok": True, "status": to_json(self.collect())}

    def collect(self) -> Status:
        began = time.perf_counter()
        files = FileCache(max_open=_OPEN_FILES)
        try:
            rows = self._containers(files)
        finally:
            files.close()
        return Status(SCHEMA, self._daemon(), rows, time.perf_counter() - began)

    def _daemon(self) -> Daemon:
        fs, now = self.fs, time.monotonic()
        stats, sampler, latency = fs.stats, fs.sampler, fs.latency.summary()
        return Daemon(
            pid=os.getpid(),
            version=__version__,
            mountpoint=self.mountpoint,
            uptime_seconds=now - self.started,
            cgroup_layout=fs.hierarchies.layout.value,
            libfuse=self.libfuse,
            reads=Reads(stats.renders, stats.host_reads, stats.fallbacks),
            errors=stats.errors,
            last_error_age_seconds=None if stats.last_error is None else now - stats.last_error,
            latency=Latency(latency.samples, latency.sum_seconds, latency.p50_seconds, latency.p99_seconds),
            sampler=SamplerCost(
                len(fs.registry),
                sampler.passes,
                sampler.cpu_ns / 1e9,
                None if sampler.last_pass_ns is None else sampler.last_pass_ns / 1e9,
            ),
        )

    def _dev(self) -> str | None:
        mount = mount_at(self.mountpoint, self.own_mountinfo)
        return mount.dev if mount is not None and mount.fstype == FSTYPE else None

    def _containers(self, files: FileCache) -> list[Container]:
        options = self.fs.options
        cgroups = open_reader(self.fs.hierarchies, self.fs.clock_ticks, files)
        host = HostFiles(options.proc_root, options.sys_root, files)
        host_uptime = parse_uptime(host.proc("uptime")).up
        online = host.online_cpus()
        dev = self._dev()
        now = time.monotonic()
        rows, keys = [], set()
        for record in discover(options.proc_root, self.resolver):
            key = self.fs.cgroups.identity(record.cgroups)
            row = self._container(record, key, cgroups, online, host_uptime, dev, now)
            if row is not None:
                rows.append(row)
                keys.add(key)
        self.oom.keep_only(keys)
        return rows

    def _container(
        self,
        record: ContainerRecord,
        key: CgroupKey,
        cgroups: CgroupReader,
        online: list[int],
        host_uptime: float,
        dev: str | None,
        now: float,
    ) -> Container | None:
        proc_root, paths = self.fs.options.proc_root, record.cgroups
        try:
            started = parse_proc_stat(read_text(f"{proc_root}/{record.init_pid}/stat")).starttime
        except (OSError, ValueError, IndexError):
            return None  # exited since discovery
        uptime = max(0.0, host_uptime - started / self.fs.clock_ticks)
        memory = _optional(lambda: cgroups.memory(paths))
        pids = _optional(lambda: cgroups.pids(paths))
        kills = _optional(lambda: cgroups.oom_kills(paths))

        def cpu() -> Cpu:
            limits = cgroups.cpu_limits(paths)
            usage = cgroups.cpu_usage(paths)
            visible = len(visible_cpus(online, limits, self.fs.options.use_quota))
            quota = None if limits.quota is None else float(limits.quota)
            return Cpu(visible, quota, (usage.user_ns + usage.system_ns) / 1e9)

        def views() -> Views:
            return count_views(mounts_of(record.init_pid, proc_root), self.source, dev)

        return Container(
            name=record.name,
            kind=record.kind,
            id=record.id,
            short_id=record.short_id,
            init_pid=record.init_pid,
            cgroup=record.cgroup,
            memory=None
            if memory is None
            else Memory(memory.usage, max(0, memory.usage - memory.stat.get("inactive_file", 0)), memory.limit),
            swap=None if memory is None or not memory.swap_accounted else Swap(memory.swap_usage, memory.swap_limit),
            cpu=_optional(cpu),
            load=self._load(key),
            uptime_seconds=uptime,
            pids=None if pids is None else Pids(pids.current, pids.limit),
            oom=None if kills is None else Oom(kills, self.oom.observe(key, kills, now, uptime)),
            views=_optional(views),
        )

    def _load(self, key: CgroupKey) -> Load | None:
        # Only containers that read a view are sampled: the others have no load history.
        state = self.fs.registry.find(key)
        if state is None:
            return None
        with state.lock:
            averages = state.averages
        return Load(*(value / FIXED_1 for value in averages))
