"""`containerfs mount` and `umount`: mountpoint checks, then the FUSE adapter."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys

from containerfs.daemon import control
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.logsetup import configure_logging
from containerfs.daemon.report import daemon_report
from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, is_dead, mount_at
from containerfs.inject.service import InjectionService, WatchPolicy
from containerfs.status.collect import StatusCollector

log = logging.getLogger("containerfs")


class MountpointBusy(Exception):
    pass


def _detach(mountpoint: str) -> None:
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=True, capture_output=True)


def prepare_mountpoint(mountpoint: str, mountinfo: str = OWN_MOUNTINFO) -> None:
    """Make mountpoint ready for a new daemon, or raise MountpointBusy saying why not."""
    mount = mount_at(mountpoint, mountinfo)
    if mount is not None:
        if is_dead(mountpoint) and mount.fstype.startswith("fuse"):
            log.warning("%s: detaching the dead mount of a daemon that is gone", mountpoint)
            _detach(mountpoint)
        elif mount.fstype == FSTYPE:
            raise MountpointBusy(f"{mountpoint} is already served by a running containerfs daemon")
        else:
            raise MountpointBusy(f"{mountpoint} is already a mount point ({mount.fstype} from {mount.source})")
    os.makedirs(mountpoint, exist_ok=True)


def mount(
    mountpoint: str, options: Options, foreground: bool, log_level: str, state_dir: str, watch: WatchPolicy | None
) -> int:
    if foreground:
        configure_logging(log_level, "%(asctime)s containerfs %(levelname)s %(message)s")
    else:
        configure_logging(log_level, None, "containerfs[%(process)d]: %(levelname)s %(message)s")
    mountpoint = os.path.abspath(mountpoint)
    # A daemon keeps no directory busy; libfuse would also record a mount source that
    # names a file in the working directory as that file's path.
    os.chdir("/")
    try:
        control_path = control.socket_path(mountpoint, state_dir)
        prepare_mountpoint(mountpoint)
        fs = ContainerFS(options)
        # Made now, so a run directory that cannot exist stops us before mounting.
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except (MountpointBusy, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"containerfs: cannot mount: {err}", file=sys.stderr)
        return 1
    from containerfs.daemon.fuse_adapter import libfuse_version, serve

    injection = InjectionService(mountpoint, options.proc_root, state_dir, watch, fs.hierarchies.container_dir())
    status = control.ControlServer(
        control_path, StatusCollector(functools.partial(daemon_report, fs), mountpoint, libfuse_version()).handle
    )
    try:
        serve(fs, mountpoint, foreground, [injection, status])
    except RuntimeError as err:
        print(f"containerfs: mounting {mountpoint} failed (libfuse error {err})", file=sys.stderr)
        return 1
    injection.detach_all()
    return 0


def umount(mountpoint: str) -> int:
    result = subprocess.run(["fusermount3", "-u", os.path.abspath(mountpoint)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"containerfs: {result.stderr.strip() or 'unmount failed'}", file=sys.stderr)
    return result.returncode
