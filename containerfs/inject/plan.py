"""What to do at each view target in one mount namespace: pure, from its mount table."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple

from containerfs.host.mounttable import FSTYPE
from containerfs.procfs.mountinfo import Mount


class Action(str, enum.Enum):
    ATTACH = "attach"  # nothing of ours there: mount the view on top
    KEEP = "keep"  # the live daemon's view is already there
    REPLACE = "replace"  # a view of a daemon gone from this mountpoint: swap in the live one
    DETACH = "detach"  # take our view away (the daemon is stopping)


class Step(NamedTuple):
    view: str  # path under the daemon's mountpoint, "proc/meminfo"
    target: str  # path in the namespace, "/proc/meminfo" (prefixed by the rootfs before pivot_root)
    action: Action


def container_path(view: str) -> str:
    """Each view mirrors the container file it replaces: proc/meminfo -> /proc/meminfo."""
    return "/" + view


def _ours(mount: Mount | None, source: str) -> bool:
    return mount is not None and mount.fstype == FSTYPE and mount.source == source


def _topmost(mounts: Iterable[Mount]) -> dict[str, Mount]:
    # A later line is mounted later, hence on top of earlier ones at the same path.
    return {mount.mountpoint: mount for mount in mounts}


def plan_attach(mounts: list[Mount], source: str, live_dev: str, views: Iterable[str], prefix: str = "") -> list[Step]:
    """Make every view present and live (inject, OCI hook)."""
    top = _topmost(mounts)
    steps = []
    for view in views:
        target = prefix.rstrip("/") + container_path(view)
        mount = top.get(target)
        if _ours(mount, source):
            action = Action.KEEP if mount is not None and mount.dev == live_dev else Action.REPLACE
        else:
            action = Action.ATTACH
        steps.append(Step(view, target, action))
    return steps


def visible_views(mounts: list[Mount], source: str) -> list[Mount]:
    """The views of this mountpoint that readers in the namespace see (topmost at their path)."""
    return [mount for mount in _topmost(mounts).values() if _ours(mount, source)]


def plan_heal(mounts: list[Mount], source: str, live_dev: str) -> list[Step]:
    """Replace only the stale views: a container that chose some views keeps its choice."""
    return [
        Step(mount.root.lstrip("/"), mount.mountpoint, Action.REPLACE)
        for mount in visible_views(mounts, source)
        if mount.dev != live_dev
    ]


def plan_detach(mounts: list[Mount], source: str) -> list[Step]:
    """Remove every view of ours, stacked ones included (one step per mount)."""
    return [Step(m.root.lstrip("/"), m.mountpoint, Action.DETACH) for m in reversed(mounts) if _ours(m, source)]
