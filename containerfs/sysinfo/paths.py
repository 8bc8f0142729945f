"""Where the sysinfo sockets live: RUN_DIR/sysinfo, one set per daemon mountpoint.

The daemon and containerfs-runtime both derive them from (mountpoint, run directory), so
the wrapper needs no more configuration than the daemon has.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

from containerfs.daemon.runfiles import escape_path
from containerfs.host.proc import ProcFS

HOLDER_MODULE = "containerfs.sysinfo.holder"


# sun_path holds 108 bytes with the terminating NUL.
_MAX_SOCKET_PATH = 107


class SysinfoPaths(NamedTuple):
    directory: str
    listener: str  # linux.seccomp.listenerPath: the holder receives the listener descriptors here
    answers: str  # the daemon's socket: the holder asks it for each answer
    pidfile: str  # the holder's pid


def sysinfo_paths(mountpoint: str, run_dir: str) -> SysinfoPaths:
    directory = os.path.join(run_dir, "sysinfo")
    name = escape_path(os.path.abspath(mountpoint))
    if len(os.path.join(directory, name + ".listener.sock").encode()) > _MAX_SOCKET_PATH:
        # Too long for a socket address: the mountpoint's hash names the files.
        name = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    paths = SysinfoPaths(
        directory,
        os.path.join(directory, name + ".listener.sock"),
        os.path.join(directory, name + ".answers.sock"),
        os.path.join(directory, name + ".holder.pid"),
    )
    if len(paths.listener.encode()) > _MAX_SOCKET_PATH:
        raise ValueError(f"run directory {run_dir} is too long for a socket address; choose a shorter --run-dir")
    return paths


def holder_pid(paths: SysinfoPaths, proc_root: str = "/proc") -> int | None:
    """The running holder for these paths, from its pid file (a reused pid is not it)."""
    try:
        with open(paths.pidfile) as f:
            pid = int(f.read().strip())
        argv = ProcFS(proc_root).process(pid).read("cmdline").split("\0")
    except (OSError, ValueError):
        return None
    return pid if HOLDER_MODULE in argv and paths.listener in argv else None
