"""Which containers the watcher injects, by cgroup path."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import NamedTuple

# Desktop sandboxes (flatpak, browsers) also have pid and mount namespaces of their own;
# they live in users' sessions, container engines do not.
DEFAULT_EXCLUDE = ("/user.slice", "/user.slice/*")


class WatchPolicy(NamedTuple):
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    interval: float = 1.0

    def admits(self, cgroup: str) -> bool:
        if cgroup in ("", "/"):
            return False  # a root cgroup: a sandbox, not a container with limits
        matches = lambda patterns: any(fnmatch.fnmatchcase(cgroup, p) for p in patterns)  # noqa: E731
        return matches(self.include) and not matches(self.exclude)


# Set to "true" on a container (OCI annotation, Kubernetes pod annotation) to keep the
# host's files in it.
SKIP_ANNOTATION = "io.containerfs.skip"
# Set to a daemon's mountpoint (or a glob of mountpoints): only that daemon gives the
# container views.  Several daemons on one host (a packaged one watching every container,
# a test suite's own) then never stack their views in one container.
MOUNTPOINT_ANNOTATION = "io.containerfs.mountpoint"
_TRUE = {"1", "true", "yes", "on"}
# The same two choices as variables of the container's environment, for engines that pass
# no annotations to the runtime (Docker before 24, `ctr run`, LXC): `docker run -e`.  Not
# CONTAINERFS_MOUNTPOINT: LXC hands lxc.environment to its hooks, where that names the daemon.
ENVIRONMENT_MARKERS = {"CONTAINERFS_SKIP": SKIP_ANNOTATION, "CONTAINERFS_VIEWS_FROM": MOUNTPOINT_ANNOTATION}


def markers_from_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The annotations a container's environment variables stand for."""
    return {key: environment[name] for name, key in ENVIRONMENT_MARKERS.items() if name in environment}


def declined(annotations: Mapping[str, str], mountpoint: str) -> str:
    """Why a container with these annotations gets no views from the daemon at mountpoint ("" if it does)."""
    if str(annotations.get(SKIP_ANNOTATION, "")).strip().lower() in _TRUE:
        return f"it opted out ({SKIP_ANNOTATION})"
    wanted = annotations.get(MOUNTPOINT_ANNOTATION)
    if wanted is not None and not fnmatch.fnmatchcase(os.path.normpath(mountpoint), os.path.normpath(str(wanted))):
        return f"it takes its views from {wanted} ({MOUNTPOINT_ANNOTATION})"
    return ""
