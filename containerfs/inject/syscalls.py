"""The new mount API and setns through libc's syscall(2).

Python's os module has none of them before 3.12.  open_tree and move_mount have the same
number on every architecture (added after the syscall tables were unified, Linux 5.2);
setns and umount2 have glibc wrappers.
"""

from __future__ import annotations

import ctypes
import errno
import os

_OPEN_TREE = 428
_MOVE_MOUNT = 429

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
# Linux >= 6.5: mount beneath the top mount at the target, so a stale view is swapped
# for a live one without a moment where the container sees the file underneath.
MOVE_MOUNT_BENEATH = 0x00000200
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class MountApiMissing(OSError):
    """The kernel has no open_tree/move_mount (Linux < 5.2, or blocked by seccomp)."""


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise MountApiMissing(err, f"{what}: the kernel lacks the new mount API (Linux >= 5.2 needed)")
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def open_tree(path: str) -> int:
    """A detached copy of the mount of path (a file or directory), as an fd."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
    result = _libc.syscall(_OPEN_TREE, AT_FDCWD, os.fsencode(path), ctypes.c_uint(flags))
    return _check(result, "open_tree", path)


def move_mount(tree_fd: int, target: str, beneath: bool = False) -> None:
    flags = MOVE_MOUNT_F_EMPTY_PATH | (MOVE_MOUNT_BENEATH if beneath else 0)
    result = _libc.syscall(_MOVE_MOUNT, tree_fd, b"", AT_FDCWD, os.fsencode(target), ctypes.c_uint(flags))
    _check(result, "move_mount", target)


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def umount_detached(target: str) -> None:
    # umount2 with MNT_DETACH: a dead FUSE mount cannot answer, so never wait for it.
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH), "umount", target)
