"""Where the sysinfo sockets live: in the run directory, one set per daemon mountpoint.

The daemon and containerfs-runtime both derive them from (mountpoint, run directory), so
the wrapper needs no more configuration than the daemon has.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from containerfs.daemon.control import socket_path

HOLDER_MODULE = "containerfs.sysinfo.holder"


class SysinfoPaths(NamedTuple):
    listener: str  # linux.seccomp.listenerPath: the holder receives the listener descriptors here
    answers: str  # the daemon's socket: the holder asks it for each answer
    pidfile: str  # the holder's pid
    log: str  # the holder's stderr


def sysinfo_paths(mountpoint: str, run_dir: str) -> SysinfoPaths:
    listener = socket_path(mountpoint, os.path.join(run_dir, "sysinfo-listener"))
    answers = socket_path(mountpoint, os.path.join(run_dir, "sysinfo-answers"))
    base = listener[: -len(".sock")]
    return SysinfoPaths(listener, answers, base + ".pid", base + ".log")


def holder_pid(paths: SysinfoPaths, proc_root: str = "/proc") -> int | None:
    """The running holder for these paths, from its pid file (a reused pid is not it)."""
    try:
        with open(paths.pidfile) as f:
            pid = int(f.read().strip())
        with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if HOLDER_MODULE.encode() in argv and paths.listener.encode() in argv else None
