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
import stat
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
from containerfs.daemon.tracking import StateKey, StateRegistry, identity
from containerfs.host import roots
from containerfs.host.errors import Unavailable
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache, read_text
from containerfs.host.ttl import TtlCache
from containerfs.views.base import Overlay, View, ViewContext
from containerfs.views.registry import OVERLAYS, VIEWS, device_views, directories

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
        # Block devices come and go: their views are listed again after a second.
        self._trees: TtlCache[tuple[dict[str, View], set[str]]] = TtlCache(1.0, max_entries=1)
        # A handle's kind: the index of its file's path here (files come and go; paths stay few).
        self._kinds: list[str] = []
        self._kind_of: dict[str, int] = {}
        self._largest: dict[str, int] = {}  # file -> longest content served, for size()
        # The host's files grow rarely (hotplug, new disks): size() measures them now and then.
        self._host_measured: TtlCache[None] = TtlCache(10.0)

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
        except (OSError, ValueError, LookupError, Unavailable):
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
            self._seen(key, self._view(key).host_content(self.host).encode())

    def open(self, path: str, pid: int) -> int:
        """A handle for one open file of the view at path (pid: the opener, unused yet)."""
        if self.is_dir(path):
            raise IsADirectory(path)
        key = self._key(path)
        kind = self._kind_of.get(key)
        if kind is None:
            kind = self._kind_of[key] = len(self._kinds)
            self._kinds.append(key)
        return self.snapshots.open(kind)

    def read(self, handle: int, size: int, offset: int, pid: int) -> bytes:
        """size bytes at offset of the open file handle, read by thread pid."""
        content = self.snapshots.get(handle)
        if offset == 0 or content is None:
            try:
                key = self._kinds[self.snapshots.kind(handle)]
            except IndexError:
                raise NotFound(f"handle {handle}") from None
            started = perf_counter_ns()
            content = self.render(self._view(key), pid)
            self.latency.record(perf_counter_ns() - started)
            self.snapshots.put(handle, content)
        return content[offset : offset + size]

    def release(self, handle: int) -> None:
        self.snapshots.release(handle)

    def render_path(self, path: str, pid: int) -> bytes:
        if self.is_dir(path):
            raise IsADirectory(path)
        return self.render(self._view(self._key(path)), pid)

    def _context(self, pid: int) -> ViewContext | None:
        """What the views compute from for process pid; None for a host process."""
        container = self.resolver.resolve(pid)
        if container is None:
            return None
        return self._container_context(container, pid)[0]

    def _container_context(self, container: Container, pid: int) -> tuple[ViewContext, StateKey]:
        key = identity(self.hierarchies, container.cgroups)
        state, created, replaced = self.registry.get(key, container.cgroups)
        if replaced:
            # The path was recreated (docker restart): descriptors of the old directory's files.
            self.cgroups.forget(container.cgroups)
        if created:
            # Tracking starts at the first read: fill the task counts right away.
            self.sampler.refresh(state)
        ctx = ViewContext(self.host, self.cgroups, container, state, self.options.use_quota, self.clock_ticks, pid)
        return ctx, key

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
                return self._render_container(view, container, pid)
            except (OSError, Unavailable):
                self.resolver.forget(pid)
            again = self.resolver.resolve(pid)
            if again is None:  # moved out of its container, to the host
                self.stats.host_reads += 1
                return self._seen(view.path, view.host_content(self.host).encode())
            return self._render_container(view, again, pid)
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

    def _render_container(self, view: View, container: Container, pid: int) -> bytes:
        ctx, key = self._container_context(container, pid)
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
