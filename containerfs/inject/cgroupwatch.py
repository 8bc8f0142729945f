"""Wake the watcher when a cgroup directory appears: a container gets one as it starts.

inotify on a cgroup hierarchy reports each new directory (runc, systemd and every engine
create them with mkdir), so new containers are looked for at once rather than at the next
poll.  Python has no inotify binding: libc's, through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct

log = logging.getLogger("containerfs.inject")

IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_IGNORED = 0x00008000  # the watched directory is gone (rmdir of a cgroup)
IN_Q_OVERFLOW = 0x00004000
IN_ISDIR = 0x40000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

_libc = ctypes.CDLL(None, use_errno=True)


class CgroupCreations:
    """inotify watches on every directory of one cgroup hierarchy."""

    def __init__(self, root: str) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, str] = {}
        self._watches: dict[str, int] = {}
        self._full = False
        self._add_tree(root)

    def _add_tree(self, root: str) -> None:
        for directory, _, _ in os.walk(root):
            if self._full:
                return
            wd = _libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_CREATE | IN_DELETE)
            if wd >= 0:
                self._dirs[wd] = directory
                self._watches[directory] = wd
            elif ctypes.get_errno() == errno.ENOSPC:
                # fs.inotify.max_user_watches reached: deeper cgroups are found by polling.
                self._full = True
                log.warning("inotify watch limit reached at %d cgroups; polling covers the rest", len(self._dirs))

    def wait(self, timeout: float, wake_fd: int) -> bool:
        """Wait up to timeout (or until wake_fd is readable); True if a cgroup appeared."""
        ready, _, _ = select.select([self.fd, wake_fd], [], [], timeout)
        if self.fd not in ready:
            return False
        created = False
        data = os.read(self.fd, 65536)
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & IN_IGNORED:
                self._watches.pop(self._dirs.pop(wd, ""), None)
            elif mask & IN_Q_OVERFLOW:
                created = True  # events were lost: look, as if something appeared
            elif mask & IN_ISDIR and wd in self._dirs:
                path = os.path.join(self._dirs[wd], os.fsdecode(name))
                if mask & IN_CREATE:
                    created = True
                    self._add_tree(path)
                elif mask & IN_DELETE:
                    self._forget(path)
        return created

    def _forget(self, path: str) -> None:
        # cgroupfs sends no IN_IGNORED for a removed cgroup, and a watch keeps its inode
        # alive: without this, every container ever started would hold a watch.
        wd = self._watches.pop(path, None)
        if wd is not None:
            self._dirs.pop(wd, None)
            _libc.inotify_rm_watch(self.fd, wd)

    @property
    def watched(self) -> int:
        return len(self._dirs)

    def close(self) -> None:
        os.close(self.fd)
