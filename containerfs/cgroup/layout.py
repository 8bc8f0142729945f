"""Which cgroup hierarchies a host has, found under an injected cgroup root."""

from __future__ import annotations

import enum
import os
from typing import NamedTuple


class Layout(enum.Enum):
    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"  # v1 controllers plus a v2 tree without controllers


class Hierarchies(NamedTuple):
    layout: Layout
    root: str
    v1_dirs: dict[str, str]  # controller -> hierarchy directory (v1 and hybrid)

    def v1_dir(self, controller: str) -> str | None:
        return self.v1_dirs.get(controller)

    def container_dir(self) -> str:
        """The hierarchy every container gets a directory in: v2's, else v1 memory's."""
        if self.layout is Layout.V2:
            return self.root
        return self.v1_dirs.get("memory") or next(iter(self.v1_dirs.values()))


def detect(cgroup_root: str) -> Hierarchies:
    if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        return Hierarchies(Layout.V2, cgroup_root, {})
    v1_dirs: dict[str, str] = {}
    for entry in sorted(os.listdir(cgroup_root)):
        path = os.path.join(cgroup_root, entry)
        if entry == "unified" or not os.path.isdir(path):
            continue
        # Co-mounted controllers live in one directory ("cpu,cpuacct"), usually with a
        # symlink per controller; either spelling finds it.
        for controller in entry.split(","):
            v1_dirs.setdefault(controller, path)
    if not v1_dirs:
        raise ValueError(f"no cgroup hierarchy found under {cgroup_root}")
    hybrid = os.path.exists(os.path.join(cgroup_root, "unified", "cgroup.controllers"))
    return Hierarchies(Layout.HYBRID if hybrid else Layout.V1, cgroup_root, v1_dirs)
