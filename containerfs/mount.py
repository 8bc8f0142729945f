"""`containerfs mount` and `umount`: mountpoint checks, then the FUSE adapter."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import subprocess
import sys

from containerfs import control
from containerfs.core import ContainerFS, Options
from containerfs.fsread import read_text
from containerfs.procfs.mountinfo import parse_mountinfo, topmost
from containerfs.status.collect import StatusCollector

log = logging.getLogger("containerfs")


# The daemon's own mount table: where it mounts is real even when the views read
# injected roots (--proc-root serves fixture trees through a real mount).
OWN_MOUNTINFO = "/proc/self/mountinfo"


class MountpointBusy(Exception):
    pass


def _is_dead(mountpoint: str) -> bool:
    try:
        # statvfs always reaches the filesystem; stat may be answered from cached attributes.
        os.statvfs(mountpoint)
    except OSError as err:
        # A FUSE mount whose daemon died answers ENOTCONN until it is detached.
        return err.errno == errno.ENOTCONN
    return False


def _detach(mountpoint: str) -> None:
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=True, capture_output=True)


def prepare_mountpoint(mountpoint: str, mountinfo: str = OWN_MOUNTINFO) -> None:
    """Make mountpoint ready for a new daemon, or raise MountpointBusy saying why not."""
    mount = topmost(parse_mountinfo(read_text(mountinfo)), mountpoint)
    if mount is not None:
        if _is_dead(mountpoint) and mount.fstype.startswith("fuse"):
            log.warning("%s: detaching the dead mount of a daemon that is gone", mountpoint)
            _detach(mountpoint)
        elif mount.fstype == "fuse.containerfs":
            raise MountpointBusy(f"{mountpoint} is already served by a running containerfs daemon")
        else:
            raise MountpointBusy(f"{mountpoint} is already a mount point ({mount.fstype} from {mount.source})")
    os.makedirs(mountpoint, exist_ok=True)


def _configure_logging(foreground: bool, level: str) -> None:
    if foreground:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s containerfs %(levelname)s %(message)s"))
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler("/dev/log")
        handler.setFormatter(logging.Formatter("containerfs[%(process)d]: %(levelname)s %(message)s"))
    else:
        handler = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def mount(mountpoint: str, options: Options, foreground: bool, log_level: str) -> int:
    _configure_logging(foreground, log_level)
    mountpoint = os.path.abspath(mountpoint)
    # A daemon keeps no directory busy; libfuse would also record a mount source that
    # names a file in the working directory as that file's path.
    os.chdir("/")
    try:
        control_path = control.socket_path(mountpoint)
        prepare_mountpoint(mountpoint)
        fs = ContainerFS(options)
        # Made now, so a run directory that cannot exist stops us before mounting.
        os.makedirs(os.path.dirname(control_path), mode=0o700, exist_ok=True)
    except (MountpointBusy, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"containerfs: cannot mount: {err}", file=sys.stderr)
        return 1
    from containerfs.fuse_adapter import libfuse_version, serve

    collector = StatusCollector(fs, mountpoint, libfuse_version())
    fs.services.append(control.ControlServer(control_path, collector.handle))

    try:
        serve(fs, mountpoint, foreground)
    except RuntimeError as err:
        print(f"containerfs: mounting {mountpoint} failed (libfuse error {err})", file=sys.stderr)
        return 1
    return 0


def umount(mountpoint: str) -> int:
    result = subprocess.run(["fusermount3", "-u", os.path.abspath(mountpoint)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"containerfs: {result.stderr.strip() or 'unmount failed'}", file=sys.stderr)
    return result.returncode
