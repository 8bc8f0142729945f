"""Inject, heal and detach views in one mount namespace, given a live view source."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import NamedTuple

from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, is_dead, mount_at, mount_source, mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject import syscalls
from containerfs.inject.namespace import CHILD_TIMEOUT_SECONDS, Outcome, apply_in_namespace, needs_tree
from containerfs.inject.plan import Action, Step, UnsafeStep, check_step
from containerfs.procfs.mountinfo import Mount
from containerfs.views.overlays import OVERLAY_DIRS


class NotServing(Exception):
    """No live containerfs daemon at the mountpoint: the views cannot be injected."""


class HostNamespace(OSError):
    """The target is the host's (or the daemon's own) mount namespace, not a container's."""


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


def own_source(mountpoint: str, views: tuple[str, ...], mountinfo: str = OWN_MOUNTINFO) -> ViewSource:
    """The daemon's own mount, from its mount table alone.

    The daemon never goes through the kernel to its own filesystem: a thread of it waiting
    for an answer only its FUSE loop can give makes the process unkillable once that loop
    is gone (kill -9 then leaves a daemon stuck in D state, holding the mount).
    """
    mount = mount_at(mountpoint, mountinfo)
    if mount is None or mount.fstype != FSTYPE:
        raise NotServing(f"{mountpoint} is not mounted (unmounted from outside?)")
    return ViewSource(mountpoint, mount.source, mount.dev, views)


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


def is_host_namespace(pid: int | str, proc_root: str) -> bool:
    """Whether pid's mount namespace is the host's (init's or kthreadd's) or, for another process, ours.

    "self" is a hook that runs inside the container's namespace (createContainer, LXC's
    mount hook): there our own namespace is the container's.
    """
    proc = ProcFS(proc_root)
    mntns = proc.process(pid).ns("mnt")
    hosts = set()
    # pid 1 may be hidden from us (a sandboxing init); kthreadd is always the host's.
    for host_pid in (1, 2):
        with contextlib.suppress(OSError):
            hosts.add(proc.process(host_pid).ns("mnt"))
    if pid != "self":
        hosts.add(proc.self_process().ns("mnt"))
    return mntns in hosts


def carry_out(
    source: ViewSource, pid: int | str, steps: list[Step], proc_root: str, timeout: float = CHILD_TIMEOUT_SECONDS
) -> list[Outcome]:
    """Apply steps in the mount namespace of pid; a step that needs no change costs no fork.

    Every route into a container ends here, so here the rules hold (plan.check_step): only
    view targets, never the host's namespace.  An unsafe step fails and is not carried out.
    """
    refused: dict[int, Outcome] = {}
    for i, step in enumerate(steps):
        try:
            check_step(step, source.views)
        except UnsafeStep as err:
            refused[i] = Outcome(step, False, f"refused: {err}")
    todo = [i for i, step in enumerate(steps) if i not in refused and step.action not in (Action.KEEP, Action.LEAVE)]
    if not todo:
        return [refused.get(i, Outcome(step, True)) for i, step in enumerate(steps)]
    if is_host_namespace(pid, proc_root):
        raise HostNamespace(errno.EPERM, f"pid {pid} is in the host's mount namespace: views go only into containers")
    trees: dict[int, int] = {}
    try:
        for i in todo:
            if needs_tree(steps[i]):
                trees[i] = syscalls.open_tree(os.path.join(source.mountpoint, steps[i].view))
        mntns = os.open(ProcFS(proc_root).process(pid).path("ns/mnt"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            todo_trees = {todo.index(i): fd for i, fd in trees.items()}
            done = apply_in_namespace(mntns, [steps[i] for i in todo], todo_trees, timeout)
        finally:
            os.close(mntns)
    finally:
        for fd in trees.values():
            os.close(fd)
    results = dict(zip(todo, done))
    return [refused.get(i) or results.get(i) or Outcome(step, True) for i, step in enumerate(steps)]
