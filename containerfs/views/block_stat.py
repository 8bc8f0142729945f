"""/sys/block/DEV/stat and DEV/PART/stat: the diskstats view's counters, one file per device.

iostat lists /sys/block and reads each device's stat file.  Every host block device gets
one, computed like its /proc/diskstats line (views.diskstats.device_counters); a device
the container did no I/O on reads zeros.  The cgroup counts I/O per disk, so partitions
always read zeros: the counters cannot tell which partition was used.

/sys/block/DEV is a symbolic link into /sys/devices (the same in the container: one
kernel); a view lives at the link's target, e.g. sys/devices/virtual/block/loop0/stat,
so a bind there is what the container's /sys/block/loop0/stat leads to.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

from containerfs.cgroup.records import IoDevice
from containerfs.host.files import HostFiles
from containerfs.procfs.diskstats import parse_block_stat, render_block_stat
from containerfs.views.base import View, ViewContext
from containerfs.views.diskstats import device_counters, warn_no_counters


class BlockDevice(NamedTuple):
    path: str  # the device's directory below the sys root, e.g. devices/virtual/block/loop0
    major: int
    minor: int


def _device(sys_root: str, path: str) -> BlockDevice:
    with open(os.path.join(sys_root, path, "dev")) as f:
        major, minor = f.read().strip().split(":")
    return BlockDevice(path, int(major), int(minor))


def block_devices(sys_root: str) -> list[BlockDevice]:
    """The host's disks (the targets of sys/block/*) and their partitions."""
    real_root = os.path.realpath(sys_root)
    block = os.path.join(sys_root, "block")
    devices = []
    for name in sorted(os.listdir(block)):
        real = os.path.realpath(os.path.join(block, name))
        path = os.path.relpath(real, real_root)
        if path.startswith("../"):
            continue  # not a kernel's link: it leaves the sys root
        try:
            devices.append(_device(sys_root, path))
            devices += [
                _device(sys_root, f"{path}/{part}")
                for part in sorted(os.listdir(real))
                if os.path.exists(os.path.join(real, part, "partition"))
            ]
        except (OSError, ValueError):
            continue  # removed while we looked
    return devices


def render(ctx: ViewContext, device: BlockDevice) -> str:
    host_text = ctx.host.sys(f"{device.path}/stat")
    counters = ctx.cgroups.io(ctx.paths)
    if counters is None:
        warn_no_counters()
        return host_text
    io = counters.get((device.major, device.minor), IoDevice())
    return render_block_stat(device_counters(parse_block_stat(host_text), io))


def view(device: BlockDevice) -> View:
    rel = f"{device.path}/stat"
    return View(f"sys/{rel}", lambda host: host.sys(rel), functools.partial(render, device=device))


def views(host: HostFiles) -> dict[str, View]:
    try:
        devices = block_devices(host.sys_root)
    except OSError:
        return {}  # no /sys/block (a sys root without block devices)
    return {v.path: v for v in map(view, devices)}
