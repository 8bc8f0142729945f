"""What the daemon answers on its control socket: its own figures and every container's.

Runs in the control thread, beside the FUSE loop: it reads through its own descriptors
(closed after each answer) and its own resolver, and learns of the daemon only through
its DaemonReport (daemon/report.py): counters and the load sampler's averages, copied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from containerfs import __version__
from containerfs.cgroup.common import CgroupKey
from containerfs.cgroup.reader import CgroupReader, open_reader
from containerfs.containers.cpus import visible_cpus
from containerfs.containers.discover import ContainerRecord, discover
from containerfs.containers.memfigures import working_set
from containerfs.containers.resolve import Resolver
from containerfs.daemon.report import DaemonReport
from containerfs.host.errors import ProcessGone, Unavailable
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache
from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, mount_at, mount_source, mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject.plan import visible_views
from containerfs.procfs.loadavg import FIXED_1
from containerfs.procfs.mountinfo import Mount
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
from containerfs.views.overlays import bind_targets
from containerfs.views.registry import VIEWS, device_views
from containerfs.views.uptime import seconds_up

T = TypeVar("T")
# Enough descriptors for one container's files; all are closed after each answer.
_OPEN_FILES = 64


def count_views(mounts: list[Mount], source: str, dev: str | None, served: Iterable[str] = VIEWS) -> Views:
    """This mountpoint's views in a mount table: served by the daemon's mount (dev), or stale.

    A view's source names its daemon's mountpoint; a view from that mountpoint on another
    device was bound from a daemon that is gone.  Views of other mountpoints are not ours.
    """
    views = visible_views(mounts, source)
    live = sum(mount.dev == dev for mount in views)
    return Views(live, len(views) - live, len(bind_targets(served)))


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
    except (OSError, Unavailable):
        return None  # a controller that is off, a file this kernel lacks, a cgroup that went away


class StatusCollector:
    def __init__(
        self, daemon: Callable[[], DaemonReport], mountpoint: str, libfuse: str, own_mountinfo: str = OWN_MOUNTINFO
    ):
        self.daemon = daemon  # the daemon's figures, read afresh for each answer
        self.mountpoint = mountpoint
        self.libfuse = libfuse
        # The daemon's real mount table: its mount is real even over injected roots.
        self.own_mountinfo = own_mountinfo
        self.source = mount_source(mountpoint)
        self.started = time.monotonic()
        self.resolver = Resolver(daemon().proc_root)
        self.oom = OomWatch()

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """The control socket's handler."""
        if message.get("request") != "status":
            return {"ok": False, "error": f"unknown request {message.get('request')!r}"}
        return {"ok": True, "status": to_json(self.collect())}

    def collect(self) -> Status:
        began = time.perf_counter()
        report = self.daemon()
        files = FileCache(max_open=_OPEN_FILES)
        try:
            rows = self._containers(report, files)
        finally:
            files.close()
        return Status(SCHEMA, self._daemon(report), rows, time.perf_counter() - began)

    def _daemon(self, report: DaemonReport) -> Daemon:
        now, reads, latency, sampling = time.monotonic(), report.reads, report.latency, report.sampling
        return Daemon(
            pid=os.getpid(),
            version=__version__,
            mountpoint=self.mountpoint,
            uptime_seconds=now - self.started,
            cgroup_layout=report.hierarchies.layout.value,
            libfuse=self.libfuse,
            reads=Reads(reads.renders, reads.host_reads, reads.fallbacks),
            errors=reads.errors,
            last_error_age_seconds=None if reads.last_error is None else now - reads.last_error,
            latency=Latency(latency.samples, latency.sum_seconds, latency.p50_seconds, latency.p99_seconds),
            sampler=SamplerCost(
                sampling.tracked,
                sampling.passes,
                sampling.cpu_ns / 1e9,
                None if sampling.last_pass_ns is None else sampling.last_pass_ns / 1e9,
            ),
        )

    def _dev(self) -> str | None:
        mount = mount_at(self.mountpoint, self.own_mountinfo)
        return mount.dev if mount is not None and mount.fstype == FSTYPE else None

    def _containers(self, report: DaemonReport, files: FileCache) -> list[Container]:
        cgroups = open_reader(report.hierarchies, report.clock_ticks, files)
        host = HostFiles(report.proc_root, report.sys_root, files)
        host_uptime = parse_uptime(host.proc("uptime")).up
        online = host.online_cpus()
        dev = self._dev()
        now = time.monotonic()
        # What injection binds on this host: the views, one stat file per block device.
        served = (*VIEWS, *device_views(host))
        rows, keys = [], set()
        for record in discover(report.proc_root, self.resolver):
            key = cgroups.identity(record.cgroups)
            row = self._container(report, record, key, cgroups, online, host_uptime, dev, now, served)
            if row is not None:
                rows.append(row)
                keys.add(key)
        self.oom.keep_only(keys)
        return rows

    def _container(
        self,
        report: DaemonReport,
        record: ContainerRecord,
        key: CgroupKey,
        cgroups: CgroupReader,
        online: list[int],
        host_uptime: float,
        dev: str | None,
        now: float,
        served: tuple[str, ...],
    ) -> Container | None:
        proc_root, paths = report.proc_root, record.cgroups
        try:
            started = ProcFS(proc_root).process(record.init_pid).stat().starttime
        except ProcessGone:
            return None  # exited since discovery
        uptime = seconds_up(host_uptime, started, report.clock_ticks)
        memory = _optional(lambda: cgroups.memory(paths))
        pids = _optional(lambda: cgroups.pids(paths))
        kills = _optional(lambda: cgroups.oom_kills(paths))

        def cpu() -> Cpu:
            limits = cgroups.cpu_limits(paths)
            usage = cgroups.cpu_usage(paths)
            visible = len(visible_cpus(online, limits, report.use_quota))
            quota = None if limits.quota is None else float(limits.quota)
            return Cpu(visible, quota, (usage.user_ns + usage.system_ns) / 1e9)

        def views() -> Views:
            return count_views(mounts_of(record.init_pid, proc_root), self.source, dev, served)

        # Only containers that read a view are sampled: the others have no load history.
        averages = report.loads.get(key)
        return Container(
            name=record.name,
            kind=record.kind,
            id=record.id,
            short_id=record.short_id,
            init_pid=record.init_pid,
            cgroup=record.cgroup,
            memory=None if memory is None else Memory(memory.usage, working_set(memory), memory.limit),
            swap=None if memory is None or not memory.swap_accounted else Swap(memory.swap_usage, memory.swap_limit),
            cpu=_optional(cpu),
            load=None if averages is None else Load(*(value / FIXED_1 for value in averages)),
            uptime_seconds=uptime,
            pids=None if pids is None else Pids(pids.current, pids.limit),
            oom=None if kills is None else Oom(kills, self.oom.observe(key, kills, now, uptime)),
            views=_optional(views),
        )
