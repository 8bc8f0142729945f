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
import stat
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
from containerfs.host import roots
from containerfs.host.errors import Unavailable
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache, read_text
from containerfs.host.ttl import TtlCache
from containerfs.views.base import Overlay, View, ViewContext
from containerfs.views.registry import OVERLAYS, VIEWS, device_views, directories

log = logging.getLogger(__name__)


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
        self.sampler = LoadSampler(options.proc_root, self.cgroups, self.registry, self.stats)
        # Time spent rendering a read at offset 0, the one that computes content.
        self.latency = LatencyHistogram()
        self._errors = RateLimitedLog(log)
        self.snapshots = Snapshots()
        # Block devices come and go: their views are listed again after a second.
        self._trees: TtlCache[tuple[dict[str, View], set[str]]] = TtlCache(1.0, max_entries=1)

    # -- tree ------------------------------------------------------------------------

    def views(self) -> list[str]:
        return list(self._tree()[0])

    def _tree(self) -> tuple[dict[str, View], set[str]]:
        def build() -> tuple[dict[str, View], set[str]]:
            views = {**VIEWS, **device_views(self.host)}
            return views, directories(views)

        return self._trees.get(None, build)

    @staticmethod
    def _key(path: str) -> str:
        return path.strip("/")

    @staticmethod
    def _overlay(key: str) -> tuple[Overlay, str] | None:
        """The overlaid directory key lies in, and key below it."""
        for prefix, overlay in OVERLAYS.items():
            if key == prefix or key.startswith(prefix + "/"):
                return overlay, key[len(prefix) + 1 :]
        return None

    def _host_entry(self, key: str) -> os.stat_result | None:
        """The host's directory or regular file that key passes through, if any."""
        found = self._overlay(key)
        if found is None:
            return None
        overlay, rel = found
        try:
            st = os.lstat(os.path.join(overlay.host_dir(self.host), rel))
        except OSError:
            return None
        return st if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) else None

    def is_dir(self, path: str) -> bool:
        key = self._key(path)
        views, dirs = self._tree()
        if key in dirs:
            return True
        if key in views:
            return False
        st = self._host_entry(key)
        if st is None:
            raise NotFound(path)
        return stat.S_ISDIR(st.st_mode)

    def file_mode(self, path: str) -> int:
        """Permission bits of a file: a host file passed through keeps its read bits."""
        key = self._key(path)
        if key in self._tree()[0]:
            return 0o444
        st = self._host_entry(key)
        if st is None:
            raise NotFound(path)
        return st.st_mode & 0o444

    def listdir(self, path: str, pid: int | None = None) -> list[str]:
        """A directory's entries; in an overlaid directory, those the reading process pid is shown."""
        key = self._key(path)
        views, dirs = self._tree()
        prefix = key + "/" if key else ""
        names = {p[len(prefix) :].split("/", 1)[0] for p in views.keys() | dirs if p.startswith(prefix) and p != key}
        found = self._overlay(key)
        if found is not None:
            overlay, rel = found
            try:
                with os.scandir(os.path.join(overlay.host_dir(self.host), rel)) as entries:
                    names.update(e.name for e in entries if not e.is_symlink())
            except OSError:
                if key not in dirs:
                    raise NotFound(path) from None
            ctx = self._listing_context(pid) if pid is not None and not rel else None
            if ctx is not None:
                names = {name for name in names if overlay.listed(name, ctx)}
        elif key not in dirs:
            raise NotFound(path)
        return sorted(name for name in names if name)

    def _listing_context(self, pid: int) -> ViewContext | None:
        try:
            return self._context(pid)
        except (OSError, ValueError, LookupError):
            return None  # the reader is gone or has no cgroup: the host's listing

    def _view(self, key: str) -> View:
        view = self._tree()[0].get(key)
        if view is not None:
            return view
        found = self._overlay(key)
        if found is None or self._host_entry(key) is None:
            raise NotFound(key)
        overlay, rel = found
        static = os.path.join(overlay.host_dir(self.host), rel)
        return View(key, lambda host: read_text(static), lambda ctx: read_text(overlay.source(rel, ctx)))

    # -- files -----------------------------------------------------------------------

    def read(self, path: str, size: int, offset: int, pid: int) -> bytes:
        """size bytes at offset of what thread pid reads at path."""
        key = (pid, path)
        snapshot = self.snapshots.get(key)
        if offset == 0 or snapshot is None:
            if self.is_dir(path):
                raise IsADirectory(path)
            started = perf_counter_ns()
            snapshot = self.render(self._view(self._key(path)), pid)
            self.latency.record(perf_counter_ns() - started)
            self.snapshots.put(key, snapshot)
        if offset >= len(snapshot):
            self.snapshots.drop(key)  # the read at the end: this reader is done
        return snapshot[offset : offset + size]

    def render_path(self, path: str, pid: int) -> bytes:
        if self.is_dir(path):
            raise IsADirectory(path)
        return self.render(self._view(self._key(path)), pid)

    def _context(self, pid: int) -> ViewContext | None:
        """What the views compute from for process pid; None for a host process."""
        container = self.resolver.resolve(pid)
        if container is None:
            return None
        state, created = self.registry.get(self.cgroups.identity(container.cgroups), container.cgroups)
        if created:
            # Tracking starts at the first read: fill the task counts right away.
            self.sampler.refresh(state)
        return ViewContext(self.host, self.cgroups, container, state, self.options.use_quota, self.clock_ticks, pid)

    def render(self, view: View, pid: int) -> bytes:
        """What process pid reads at view: its container's figures, or the host's file."""
        try:
            ctx = self._context(pid)
            if ctx is None:
                self.stats.host_reads += 1
                return view.host_content(self.host).encode()
            text = view.render(ctx)
            self.stats.renders += 1
            return text.encode()
        except Exception as err:  # a reader must never take the daemon down
            self.stats.fallbacks += 1
            # Vanished processes and cgroups, absent hierarchies, unreadable or malformed
            # files are expected; anything else is a bug, logged with its traceback.
            expected = isinstance(err, (OSError, Unavailable))
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
