"""Questions about what is mounted where, asked of a mount table."""

from __future__ import annotations

import errno
import os

from containerfs.host.fsread import read_text
from containerfs.host.proc import ProcFS
from containerfs.host.roots import PROC_ROOT
from containerfs.procfs.mountinfo import Mount, parse_mountinfo

# The caller's own mount table: where the daemon mounts is real even when the views
# read injected roots (--proc-root serves fixture trees through a real mount).
OWN_MOUNTINFO = ProcFS(PROC_ROOT).self_process().path("mountinfo")
FSTYPE = "fuse.containerfs"


def mount_at(mountpoint: str, mountinfo: str = OWN_MOUNTINFO) -> Mount | None:
    """The topmost mount at mountpoint, if any."""
    found = None
    for mount in parse_mountinfo(read_text(mountinfo)):
        if mount.mountpoint == mountpoint:
            found = mount
    return found


def mounts_of(pid: int | str, proc_root: str) -> list[Mount]:
    return ProcFS(proc_root).process(pid).mountinfo()


def is_dead(mountpoint: str) -> bool:
    try:
        # statvfs always reaches the filesystem; stat may be answered from cached attributes.
        os.statvfs(mountpoint)
    except OSError as err:
        # A FUSE mount whose daemon died answers ENOTCONN until it is detached.
        return err.errno == errno.ENOTCONN
    return False


def mount_source(mountpoint: str) -> str:
    """The mount source (FUSE fsname) a daemon at mountpoint gives its filesystem.

    Naming the mountpoint lets a new daemon recognise, in any container's mount table,
    the bind mounts its predecessor on the same mountpoint left there.
    """
    # libfuse splits -o options at commas and reads backslash escapes.
    return "containerfs:" + mountpoint.replace("\\", "\\\\").replace(",", "\\,")
