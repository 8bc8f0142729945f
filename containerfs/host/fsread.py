"""How the core reads kernel files: whole, as text.

procfs and cgroupfs files are seq_files: a read at offset 0 regenerates them, so a file
descriptor kept open and read with pread(fd, n, 0) gives fresh content without the
cost of an open and a close.  FileCache keeps such descriptors for files whose identity
is stable (host /proc files, cgroup control files); per-process files are opened anew,
since a pid can be reused by another process.
"""

from __future__ import annotations

import os
import resource
import threading

_CHUNK = 65536


def read_text(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
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
    more = os.pread(fd, _CHUNK, len(data)) if data else b""
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


class FileCache:
    """Open descriptors for frequently read kernel files, re-read with pread at offset 0."""

    def __init__(self, max_open: int | None = None) -> None:
        self.max_open = max_open if max_open is not None else _descriptor_budget()
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

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
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
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
