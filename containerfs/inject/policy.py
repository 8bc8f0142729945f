"""Which containers the watcher injects, by cgroup path."""

from __future__ import annotations

import fnmatch
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
