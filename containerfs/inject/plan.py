"""What to do at each view target in one mount namespace: pure, from its mount table.

The rules every route (hooks, inject, watcher, healing, re-injection) obeys, checked by
check_step before anything is mounted anywhere:

- a view goes only at its own target, container_path(view), under a rootfs prefix before
  pivot_root: never at "/", never at a path of the container's choosing;
- a mount of ours whose root is not a single view file is a copy of the whole mountpoint
  (a container with `-v /:/rootfs`, an `unshare -m` shell): not a container's view, so it
  is never healed, detached or recorded (the kernel keeps or drops it with its namespace);
- a daemon detaches only its own views: those on its own superblock (device), never the
  ones of another daemon that happens to have the same mount source.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Collection, Iterable
from typing import NamedTuple

from containerfs.host.mounttable import FSTYPE
from containerfs.procfs.mountinfo import Mount


class Action(str, enum.Enum):
    ATTACH = "attach"  # nothing of ours there: mount the view on top
    KEEP = "keep"  # the live daemon's view is already there
    REPLACE = "replace"  # a view of a daemon gone from this mountpoint: swap in the live one
    DETACH = "detach"  # take our view away (the daemon is stopping)
    LEAVE = "leave"  # the container has a mount of its own there (an lxcfs bind): never stack over it


class Step(NamedTuple):
    view: str  # path under the daemon's mountpoint, "proc/meminfo"
    target: str  # path in the namespace, "/proc/meminfo" (prefixed by the rootfs before pivot_root)
    action: Action


class UnsafeStep(ValueError):
    """A step that would mount or unmount somewhere other than a view target."""


def container_path(view: str) -> str:
    """Each view mirrors the container file it replaces: proc/meminfo -> /proc/meminfo."""
    return "/" + view


def is_view_file(view: str) -> bool:
    """A relative, normalized path naming one file under the mountpoint ("" is the whole of it)."""
    return bool(view) and not view.startswith("/") and posixpath.normpath(view) == view and ".." not in view.split("/")


def serves(views: Collection[str], view: str) -> bool:
    """Whether view is one of views, or a file in a directory view (the cpu directory bound whole)."""
    return view in views or any(view.startswith(v + "/") for v in views)


def check_step(step: Step, served: Collection[str] = ()) -> None:
    """Raise UnsafeStep unless step touches only its view's own target.

    served: the files the live daemon has; a view it does not serve is never mounted.
    """
    if not is_view_file(step.view):
        raise UnsafeStep(f"{step.action.value} {step.target!r}: {step.view!r} is not a view file")
    target = step.target
    normal = target.startswith("/") and posixpath.normpath(target) == target
    if not normal or not target.endswith(container_path(step.view)):
        raise UnsafeStep(f"{step.action.value} {target!r}: not the target of view {step.view}")
    if step.action in (Action.ATTACH, Action.REPLACE) and not serves(served, step.view):
        raise UnsafeStep(f"{step.action.value} {target!r}: the daemon does not serve {step.view}")


def _ours(mount: Mount | None, source: str) -> bool:
    return mount is not None and mount.fstype == FSTYPE and mount.source == source


def _view_mount(mount: Mount, source: str, views: Collection[str] | None) -> bool:
    """One of this mountpoint's views at its own target (not a copy of the whole mount or a part).

    views: the files the daemon serves; None accepts any file at its target (status).
    """
    view = mount.root.lstrip("/")
    if views is not None and not serves(views, view):
        return False
    return _ours(mount, source) and is_view_file(view) and mount.mountpoint.endswith(container_path(view))


def _topmost(mounts: Iterable[Mount]) -> dict[str, Mount]:
    # A later line is mounted later, hence on top of earlier ones at the same path.
    return {mount.mountpoint: mount for mount in mounts}


def plan_attach(mounts: list[Mount], source: str, live_dev: str, views: Iterable[str], prefix: str = "") -> list[Step]:
    """Make every view present and live (inject, OCI hook, watcher)."""
    top = _topmost(mounts)
    steps = []
    for view in views:
        target = prefix.rstrip("/") + container_path(view)
        mount = top.get(target)
        if mount is not None and _ours(mount, source):
            action = Action.KEEP if mount.dev == live_dev else Action.REPLACE
        elif mount is not None:
            action = Action.LEAVE
        else:
            action = Action.ATTACH
        steps.append(Step(view, target, action))
    return steps


def visible_views(mounts: list[Mount], source: str, views: Collection[str] | None = None) -> list[Mount]:
    """The views of this mountpoint that readers in the namespace see (topmost at their path)."""
    return [mount for mount in _topmost(mounts).values() if _view_mount(mount, source, views)]


def plan_heal(mounts: list[Mount], source: str, live_dev: str, views: Collection[str]) -> list[Step]:
    """Replace only the stale views: a container that chose some views keeps its choice."""
    return [
        Step(mount.root.lstrip("/"), mount.mountpoint, Action.REPLACE)
        for mount in visible_views(mounts, source, views)
        if mount.dev != live_dev
    ]


def plan_detach(mounts: list[Mount], source: str, own_dev: str, views: Collection[str]) -> list[Step]:
    """Remove every view this daemon (its device own_dev) mounted, stacked ones included."""
    return [
        Step(m.root.lstrip("/"), m.mountpoint, Action.DETACH)
        for m in reversed(mounts)
        if _view_mount(m, source, views) and m.dev == own_dev
    ]
