"""Inject, heal and detach views in one mount namespace, given a live view source."""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, is_dead, mount_at, mount_source, mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject import syscalls
from containerfs.inject.namespace import Outcome, apply_in_namespace, needs_tree
from containerfs.inject.plan import Action, Step
from containerfs.procfs.mountinfo import Mount
from containerfs.views.overlays import OVERLAY_DIRS


class NotServing(Exception):
    """No live containerfs daemon at the mountpoint: the views cannot be injected."""


class ViewSource(NamedTuple):
    mountpoint: str
    source: str  # the mount source every view mount of this mountpoint carries
    dev: str  # the live daemon's superblock; view mounts on another one are stale
    views: tuple[str, ...] = ()  # the files it serves, relative to the mountpoint


def served_views(mountpoint: str) -> tuple[str, ...]:
    """The files a live daemon serves: what it has, not what this client's version knows."""
    found = []
    for directory, subdirs, files in os.walk(mountpoint):
        rel = os.path.relpath(directory, mountpoint)
        if rel in OVERLAY_DIRS:
            # Bound whole (the host's entries pass through it): not walked, one target.
            found.append(rel)
            subdirs.clear()
            continue
        found += [os.path.relpath(os.path.join(directory, name), mountpoint) for name in files]
    return tuple(sorted(found))


def live_source(mountpoint: str, mountinfo: str = OWN_MOUNTINFO) -> ViewSource:
    mountpoint = os.path.abspath(mountpoint)
    mount = mount_at(mountpoint, mountinfo)
    if mount is None or mount.fstype != FSTYPE:
        raise NotServing(f"no containerfs daemon serves {mountpoint} (nothing mounted there)")
    if is_dead(mountpoint):
        raise NotServing(f"the containerfs mount at {mountpoint} is dead (its daemon is gone)")
    return ViewSource(mountpoint, mount.source, mount.dev, served_views(mountpoint))


def dead_source(mountpoint: str) -> ViewSource:
    """The source of a daemon that is stopping: no live superblock, so every view is stale."""
    return ViewSource(mountpoint, mount_source(mountpoint), "")


def root_mount(mounts: list[Mount]) -> tuple[str, str] | None:
    """What a mount table has at "/"."""
    roots = [m for m in mounts if m.mountpoint == "/"]
    return (roots[-1].dev, roots[-1].root) if roots else None


def host_roots(proc_root: str) -> set[tuple[str, str] | None]:
    """The roots a container has before it pivots into its rootfs (being created).

    The runtime's: the daemon's own, and pid 1's when the daemon runs in a pod of its
    own (a DaemonSet with hostPID), where the runtimes use the node's.
    """
    roots = {root_mount(mounts_of("self", proc_root))}
    # pid 1 may be hidden from us; then the daemon's root is the host's anyway.
    with contextlib.suppress(OSError):
        roots.add(root_mount(mounts_of(1, proc_root)))
    return roots


def carry_out(source: ViewSource, pid: int | str, steps: list[Step], proc_root: str) -> list[Outcome]:
    """Apply steps in the mount namespace of pid; a step that needs no change costs no fork."""
    if all(step.action is Action.KEEP for step in steps):
        return [Outcome(step, True) for step in steps]
    trees: dict[int, int] = {}
    try:
        for i, step in enumerate(steps):
            if needs_tree(step):
                trees[i] = syscalls.open_tree(os.path.join(source.mountpoint, step.view))
        mntns = os.open(ProcFS(proc_root).process(pid).path("ns/mnt"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return apply_in_namespace(mntns, steps, trees)
        finally:
            os.close(mntns)
    finally:
        for fd in trees.values():
            os.close(fd)
