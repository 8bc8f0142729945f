"""The filesystem without FUSE: a tree of views, per-reader snapshots, host fallback.

A read at offset 0 renders fresh content for the reading thread and keeps it; later
offsets are served from that snapshot until the read at the end, so a file read in small
chunks is consistent and a reader that re-reads at offset 0 (top) sees live values.
Snapshots are kept per reading thread and file rather than per open file: then the core
needs no open or release, and libfuse answers those requests without calling Python.
"""

from __future__ import annotations

import logging
import os
from time import perf_counter_ns
from typing import NamedTuple

from containerfs.cgroup.layout import Hierarchies, detect
from containerfs.cgroup.reader import open_reader
from containerfs.containers.resolve import Resolver
from containerfs.daemon.counters import Stats
from containerfs.daemon.errors import IsADirectory, NotFound
from containerfs.daemon.latency import LatencyHistogram
from containerfs.daemon.ratelimit import RateLimitedLog
from containerfs.daemon.sampler import LoadSampler
from containerfs.daemon.snapshots import Snapshots
from containerfs.daemon.tracking import StateRegistry
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache
from containerfs.views.base import View, ViewContext
from containerfs.views.registry import VIEWS, directories

log = logging.getLogger(__name__)


class Options(NamedTuple):
    proc_root: str = "/proc"
    sys_root: str = "/sys"
    cgroup_root: str = "/sys/fs/cgroup"
    use_quota: bool = True  # count the CFS quota, not only the cpuset, as CPUs


class ContainerFS:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.files = FileCache()
        self.host = HostFiles(options.proc_root, options.sys_root, self.files)
        self.hierarchies: Hierarchies = detect(options.cgroup_root)
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.cgroups = open_reader(self.hierarchies, self.clock_ticks, self.files)
        self.resolver = Resolver(options.proc_root)
        self.registry = StateRegistry()
        self.stats = Stats()
        self.sampler = LoadSampler(options.proc_root, self.cgroups, self.registry, self.stats)
        # Time spent rendering a read at offset 0, the one that computes content.
        self.latency = LatencyHistogram()
        self._errors = RateLimitedLog(log)
        self.snapshots = Snapshots()
        self._directories = directories()

    # -- tree ------------------------------------------------------------------------

    @staticmethod
    def views() -> list[str]:
        return list(VIEWS)

    @staticmethod
    def _key(path: str) -> str:
        return path.strip("/")

    def is_dir(self, path: str) -> bool:
        key = self._key(path)
        if key in self._directories:
            return True
        if key in VIEWS:
            return False
        raise NotFound(path)

    def listdir(self, path: str) -> list[str]:
        key = self._key(path)
        if key not in self._directories:
            raise NotFound(path)
        prefix = key + "/" if key else ""
        names = {
            p[len(prefix) :].split("/", 1)[0]
            for p in VIEWS.keys() | self._directories
            if p.startswith(prefix) and p != key
        }
        return sorted(name for name in names if name)

    # -- files -----------------------------------------------------------------------

    def read(self, path: str, size: int, offset: int, pid: int) -> bytes:
        """size bytes at offset of what thread pid reads at path."""
        key = (pid, path)
        snapshot = self.snapshots.get(key)
        if offset == 0 or snapshot is None:
            if self.is_dir(path):
                raise IsADirectory(path)
            started = perf_counter_ns()
            snapshot = self.render(VIEWS[self._key(path)], pid)
            self.latency.record(perf_counter_ns() - started)
            self.snapshots.put(key, snapshot)
        if offset >= len(snapshot):
            self.snapshots.drop(key)  # the read at the end: this reader is done
        return snapshot[offset : offset + size]

    def render_path(self, path: str, pid: int) -> bytes:
        if self.is_dir(path):
            raise IsADirectory(path)
        return self.render(VIEWS[self._key(path)], pid)

    def render(self, view: View, pid: int) -> bytes:
        """What process pid reads at view: its container's figures, or the host's file."""
        try:
            container = self.resolver.resolve(pid)
            if container is None:
                self.stats.host_reads += 1
                return view.host_content(self.host).encode()
            state, created = self.registry.get(self.cgroups.identity(container.cgroups), container.cgroups)
            if created:
                # Tracking starts at the first read: fill the task counts right away.
                self.sampler.refresh(state)
            ctx = ViewContext(self.host, self.cgroups, container, state, self.options.use_quota, self.clock_ticks)
            text = view.render(ctx)
            self.stats.renders += 1
            return text.encode()
        except Exception as err:  # a reader must never take the daemon down
            self.stats.fallbacks += 1
            # Vanished processes and cgroups, missing or malformed files are expected;
            # anything else is a bug, logged with its traceback.
            expected = isinstance(err, (OSError, ValueError, LookupError))
            if not expected:
                self.stats.error()
            self._errors.warning(
                f"{view.path}:{type(err).__name__}",
                "%s for pid %d: %s; serving the host's file",
                view.path,
                pid,
                err if expected else repr(err),
                exc_info=not expected,
            )
            return view.host_content(self.host).encode()
