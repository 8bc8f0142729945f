"""How the core reads kernel files: whole, as text.

procfs and cgroupfs files are seq_files: a read at offset 0 regenerates them, so a file
descriptor kept open and read with pread(fd, n, 0) gives fresh content without the
cost of an open and a close.  FileCache keeps such descriptors for files whose identity
is stable (host /proc files, cgroup control files); per-process files are opened anew,
since a pid can be reused by another process.

Only regular files are read: a FIFO or socket bound over a kernel file (by a container
that controls its own cgroup tree, say) would block the reading thread and with it every
reader.  Files are opened O_NONBLOCK and checked with fstat before the first read.

Short of descriptors (EMFILE, ENFILE) the caches give theirs back, halving each time,
and a read that still cannot keep one opens, reads and closes; the caches grow again
slowly as opens succeed.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import threading
import weakref

_CHUNK = 65536
# A seq_file read returns whole records until the next one no longer fits its page: a
# first read shorter than this left room for a record of over 3 KB, which no kernel file
# read here has, so it was the whole file (cgroup counters, loadavg, uptime).
_WHOLE_BELOW = 1024
_PRESSURE = (errno.EMFILE, errno.ENFILE)
# Successful opens before a shrunk cache may keep one more descriptor.
_REGROW_EVERY = 64


class NotRegular(OSError):
    """A kernel file that is not a regular file (a FIFO or socket bound over it): refused."""


def _open(path: str) -> int:
    """A descriptor for the regular file path; relieves descriptor pressure once if needed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        if err.errno not in _PRESSURE or not _relieve():
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegular(errno.EINVAL, f"{path} is not a regular file")
    return fd


def read_text(path: str) -> str:
    fd = _open(path)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> str:
    # A seq_file with many records (cpuinfo, diskstats, mountinfo) returns about one page
    # per read, whatever was asked: read on until EOF.  The read that follows at the
    # offset where the last one stopped continues the kernel's iterator (no
    # regeneration), so the empty read that ends a small file costs little.
    data = os.pread(fd, _CHUNK, 0)
    more = os.pread(fd, _CHUNK, len(data)) if len(data) >= _WHOLE_BELOW else b""
    if more:
        chunks = [data, more]
        offset = len(data) + len(more)
        while more:
            more = os.pread(fd, _CHUNK, offset)
            chunks.append(more)
            offset += len(more)
        data = b"".join(chunks)
    return data.decode("utf-8", "surrogateescape")


def read_optional(path: str) -> str | None:
    """The file's text, or None when the kernel does not provide it."""
    try:
        return read_text(path)
    except FileNotFoundError:
        return None


def _descriptor_budget() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        # Descriptors are the cache: take what the administrator allows.
        target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        soft = max(soft, target)
    # Leave room for FUSE, logging, sockets and per-process files.
    return max(16, soft // 2)


_CACHES: weakref.WeakSet[FileCache] = weakref.WeakSet()


def _relieve() -> bool:
    """Close half of every cache's descriptors; whether any was closed."""
    return any([cache.shrink() for cache in list(_CACHES)])


class FileCache:
    """Open descriptors for frequently read kernel files, re-read with pread at offset 0."""

    def __init__(self, max_open: int | None = None) -> None:
        self.budget = max_open if max_open is not None else _descriptor_budget()
        self.max_open = self.budget
        self.shrinks = 0
        self._opens = 0
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        _CACHES.add(self)

    def shrink(self) -> bool:
        """Give back the older half of the descriptors (at least one); whether any was closed."""
        with self._lock:
            self.shrinks += 1
            self.max_open = len(self._fds) // 2
            closed = False
            while len(self._fds) > self.max_open:
                os.close(self._fds.pop(next(iter(self._fds))))
                closed = True
            return closed

    def read(self, path: str) -> str:
        # Under the lock: another thread closing this descriptor (forget_under) while
        # we read could let its number name some other file by the time we pread.
        with self._lock:
            fd = self._fds.get(path)
            if fd is not None:
                try:
                    return _read_all(fd)
                except OSError:
                    # The cgroup was removed (ENODEV) or recreated: forget this descriptor
                    # and let a fresh open say whether the file still exists.
                    del self._fds[path]
                    os.close(fd)
        fd = _open(path)
        try:
            text = _read_all(fd)
        except BaseException:
            os.close(fd)
            raise
        self._keep(path, fd)
        return text

    def read_optional(self, path: str) -> str | None:
        try:
            return self.read(path)
        except FileNotFoundError:
            return None

    def _keep(self, path: str, fd: int) -> None:
        with self._lock:
            old = self._fds.pop(path, None)
            if old is not None:
                os.close(old)
            self._opens += 1
            if self.max_open < self.budget and self._opens % _REGROW_EVERY == 0:
                self.max_open += 1
            if self.max_open == 0:
                os.close(fd)  # under descriptor pressure: open, read, close
                return
            while len(self._fds) >= self.max_open:
                # Oldest first: dicts keep insertion order.
                os.close(self._fds.pop(next(iter(self._fds))))
            self._fds[path] = fd

    def forget_under(self, directory: str) -> None:
        """Close the descriptors of files below directory (a cgroup that went away)."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            for path in [p for p in self._fds if p.startswith(prefix)]:
                os.close(self._fds.pop(path))

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def paths(self) -> list[str]:
        return list(self._fds)
