"""A running container's OCI annotations, from its runtime's state directory.

The watcher finds containers by their processes, which carry no annotations; the
runtimes keep them: runc lists them as `key=value` labels in state.json (with
`bundle=PATH`), crun names the bundle in its status file and the bundle's config.json
has them.  Docker sets none: exclude its containers by cgroup (--watch-exclude).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

# Where runc (alone, under Docker, under containerd) and crun keep one directory per container.
_RUNC_STATES = ("runc/*/state.json", "docker/runtime-runc/*/*/state.json", "containerd/runc/*/*/state.json")
_CRUN_STATES = ("crun/*/status",)


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}  # a container being created or deleted, or not a state file at all
    return data if isinstance(data, dict) else {}


def _labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, list):
        return {}
    return dict(str(label).split("=", 1) for label in labels if "=" in str(label))


def bundle_annotations(bundle: str) -> dict[str, str]:
    annotations = _load(os.path.join(bundle, "config.json")).get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


def annotations_of(init_pid: int, run_root: str = "/run") -> dict[str, str] | None:
    """The annotations of the container whose init is init_pid; None when no runtime knows it.

    runc writes its state file only after the container's init has pivoted: None can mean
    "not yet" as well as "not a runc or crun container" (LXC, an `unshare`).
    """
    for pattern in _RUNC_STATES:
        for path in glob.glob(os.path.join(run_root, pattern)):
            state = _load(path)
            if state.get("init_process_pid") == init_pid:
                labels = _labels((state.get("config") or {}).get("labels"))
                bundle = labels.pop("bundle", "")
                return {**(bundle_annotations(bundle) if bundle else {}), **labels}
    for pattern in _CRUN_STATES:
        for path in glob.glob(os.path.join(run_root, pattern)):
            state = _load(path)
            if state.get("pid") == init_pid and isinstance(state.get("bundle"), str):
                return bundle_annotations(state["bundle"])
    return None
