"""The filesystem without FUSE: a tree of views, per-open-file snapshots, host fallback.

The kernel's seq_file semantics: a read at offset 0 renders fresh content for the reading
process's container and keeps it in the open file's handle; later offsets are served from
that content whichever thread reads, so a file read in small chunks is consistent and a
reader that re-reads at offset 0 (top) sees live values.  The content is dropped at
release, and no open file ever sees another's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from time import perf_counter_ns
from typing import NamedTuple

from containerfs.cgroup.layout import Hierarchies, detect
from containerfs.cgroup.reader import open_reader
from containerfs.containers.resolve import Container, Resolver
from containerfs.daemon.counters import Stats
from containerfs.daemon.errors import IsADirectory, NotFound, ReadFailed
from containerfs.daemon.latency import LatencyHistogram
from containerfs.daemon.ratelimit import RateLimitedLog
from containerfs.daemon.sampler import LoadSampler
from containerfs.daemon.snapshots import Snapshots
from containerfs.daemon.tracking import StateRegistry, identity
from containerfs.host import roots
from containerfs.host.errors import Unavailable
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache
from containerfs.host.ttl import TtlCache
from containerfs.views.base import View, ViewContext
from containerfs.views.registry import VIEWS, directories

log = logging.getLogger(__name__)

_PAGE = 4096


class Options(NamedTuple):
    proc_root: str = roots.PROC_ROOT
    sys_root: str = roots.SYS_ROOT
    cgroup_root: str = roots.CGROUP_ROOT
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
        self.sampler = LoadSampler(options.proc_root, self.cgroups, self.registry, self.stats, self.hierarchies)
        # Time spent rendering a read at offset 0, the one that computes content.
        self.latency = LatencyHistogram()
        self._errors = RateLimitedLog(log)
        self.snapshots = Snapshots()
        self._directories = directories()
        self._kinds = list(VIEWS)  # a handle's kind: the index of its view
        self._largest: dict[str, int] = {}  # view -> longest content served, for size()
        # The host's files grow rarely (hotplug, new disks): size() measures them now and then.
        self._host_measured: TtlCache[None] = TtlCache(10.0)

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

    def size(self, path: str) -> int:
        """The size to report for a view: never smaller than any content it can have.

        sendfile and splice read through the page cache, which stops at the size; reads
        end at the real content's end, a short read, so a larger size pads nothing.
        Content is at most the host's file (containers see fewer CPUs, devices and lines
        with smaller figures) and the host's can grow (hotplug, new disks): twice the
        largest content seen, in whole pages.
        """
        key = self._key(path)
        self._host_measured.get(key, lambda: self._measure_host(key))
        largest = self._largest.get(key, 0)
        return (2 * largest // _PAGE + 1) * _PAGE

    def _measure_host(self, key: str) -> None:
        # Unreadable now: the largest content served so far still bounds it.
        with contextlib.suppress(OSError, ValueError):
            self._seen(key, VIEWS[key].host_content(self.host).encode())

    def open(self, path: str, pid: int) -> int:
        """A handle for one open file of the view at path (pid: the opener, unused yet)."""
        if self.is_dir(path):
            raise IsADirectory(path)
        return self.snapshots.open(self._kinds.index(self._key(path)))

    def read(self, handle: int, size: int, offset: int, pid: int) -> bytes:
        """size bytes at offset of the open file handle, read by thread pid."""
        content = self.snapshots.get(handle)
        if offset == 0 or content is None:
            try:
                key = self._kinds[self.snapshots.kind(handle)]
            except IndexError:
                raise NotFound(f"handle {handle}") from None
            started = perf_counter_ns()
            content = self.render(VIEWS[key], pid)
            self.latency.record(perf_counter_ns() - started)
            self.snapshots.put(handle, content)
        return content[offset : offset + size]

    def release(self, handle: int) -> None:
        self.snapshots.release(handle)

    def render_path(self, path: str, pid: int) -> bytes:
        if self.is_dir(path):
            raise IsADirectory(path)
        return self.render(VIEWS[self._key(path)], pid)

    def render(self, view: View, pid: int) -> bytes:
        """What process pid reads at view: its container's figures, or the host's file for a host process.

        A container process never gets the host's figures: when its container cannot be
        rendered (its cgroup was moved and removed meanwhile), it is resolved again at
        once; if that fails too, the read fails (EIO).
        """
        try:
            container = self.resolver.resolve(pid)
        except (OSError, Unavailable) as err:
            # The reader is gone (its pid no longer names a process): nobody reads the answer.
            self.stats.fallbacks += 1
            self._errors.warning(
                f"{view.path}:resolve",
                "%s for pid %d: %s; the reader is gone, serving the host's file",
                view.path,
                pid,
                err,
            )
            return self._seen(view.path, view.host_content(self.host).encode())
        if container is None:
            self.stats.host_reads += 1
            return self._seen(view.path, view.host_content(self.host).encode())
        try:
            try:
                return self._render_container(view, container)
            except (OSError, Unavailable):
                self.resolver.forget(pid)
            again = self.resolver.resolve(pid)
            if again is None:  # moved out of its container, to the host
                self.stats.host_reads += 1
                return self._seen(view.path, view.host_content(self.host).encode())
            return self._render_container(view, again)
        except Exception as err:  # a reader must never take the daemon down
            self.stats.fallbacks += 1
            # Vanished processes and cgroups, absent hierarchies, unreadable or malformed
            # files are expected; anything else is a bug, logged with its traceback.
            expected = isinstance(err, (OSError, Unavailable))
            if not expected:
                self.stats.error()
            self._errors.warning(
                f"{view.path}:{type(err).__name__}",
                "%s for pid %d: %s; the read fails",
                view.path,
                pid,
                err if expected else repr(err),
                exc_info=not expected,
            )
            raise ReadFailed(errno.EIO, f"{view.path} for pid {pid}: {err}") from err

    def _render_container(self, view: View, container: Container) -> bytes:
        key = identity(self.hierarchies, container.cgroups)
        state, created, replaced = self.registry.get(key, container.cgroups)
        if replaced:
            # The path was recreated (docker restart): descriptors of the old directory's files.
            self.cgroups.forget(container.cgroups)
        if created:
            # Tracking starts at the first read: fill the task counts right away.
            self.sampler.refresh(state)
        ctx = ViewContext(self.host, self.cgroups, container, state, self.options.use_quota, self.clock_ticks)
        content = view.render(ctx).encode()
        # Removed while we read (moved, then its cgroup deleted): a file read after the
        # removal may have looked merely absent ("no limit") and let host figures in.
        if identity(self.hierarchies, container.cgroups) != key:
            raise FileNotFoundError(errno.ENOENT, "the container's cgroup was removed while it was read")
        self.stats.renders += 1
        return self._seen(view.path, content)

    def _seen(self, key: str, content: bytes) -> bytes:
        if len(content) > self._largest.get(key, 0):
            self._largest[key] = len(content)
        return content
