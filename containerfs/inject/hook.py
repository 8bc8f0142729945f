"""The OCI hook (prestart, createRuntime, createContainer) and the LXC mount hook.

Both run before the container's pivot_root, so the views land under the rootfs path and
are in place before the container's first process starts: runtimes such as the JVM and
Go size their heaps and thread pools from /proc once, at start-up.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from containerfs.host.mounttable import mounts_of
from containerfs.inject.attach import ViewSource, carry_out
from containerfs.inject.namespace import Outcome
from containerfs.inject.plan import plan_attach
from containerfs.inject.policy import markers_from_environment
from containerfs.procfs.mountinfo import Mount


class HookError(Exception):
    pass


class ContainerState(NamedTuple):
    id: str
    pid: int
    rootfs: str
    annotations: dict[str, str]


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HookError(f"{where} annotations are not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


def parse_state(text: str, read_config: Any = None) -> ContainerState:
    """The OCI state JSON from stdin; the rootfs comes from the bundle's config.json.

    Anything malformed raises HookError with one line saying what.
    """
    try:
        state = json.loads(text)
        if not isinstance(state, dict):
            raise TypeError("not a JSON object")
        pid = int(state["pid"])
        bundle = state["bundle"]
        if not isinstance(bundle, str) or not bundle:
            raise TypeError("bundle is not a path")
    except (ValueError, KeyError, TypeError) as err:
        raise HookError(f"not an OCI state on stdin ({type(err).__name__}: {err})") from err
    if pid <= 0:
        raise HookError(f"not an OCI state on stdin (pid {pid})")
    load = read_config or _read_config
    config = load(os.path.join(bundle, "config.json"))
    if not isinstance(config, dict):
        raise HookError("the bundle's config.json is not a JSON object")
    root = config.get("root", {})
    root = {"path": "rootfs"} if root is None else root
    path = root.get("path", "rootfs") if isinstance(root, dict) else None
    if not isinstance(path, str) or not path:
        raise HookError("the bundle's config.json has no valid root.path")
    rootfs = os.path.normpath(os.path.join(bundle, path))
    annotations = {
        **markers_from_environment(_environment(config.get("process"))),
        **_annotations(config.get("annotations"), "config.json"),
        **_annotations(state.get("annotations"), "the state's"),
    }
    return ContainerState(str(state.get("id", "")), pid, rootfs, annotations)


def _environment(process: Any) -> dict[str, str]:
    """The container process's environment from config.json (a malformed one counts as empty)."""
    env = process.get("env") if isinstance(process, dict) else None
    if not isinstance(env, list):
        return {}
    return dict(str(entry).split("=", 1) for entry in env if "=" in str(entry))


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return dict(json.load(f))
    except (OSError, ValueError) as err:
        raise HookError(f"cannot read the bundle's config.json: {err}") from err


def hook_process(state_pid: int) -> int | str:
    """The process whose mount namespace gets the views.

    prestart and createRuntime hooks run in the runtime's namespaces and get the
    container's host pid.  A createContainer hook runs inside the container, which runc
    reports by the pid its init has there: the hook's parent.  The hook then already is
    in the right mount namespace.
    """
    return "self" if state_pid == os.getppid() else state_pid


def rootfs_prefix(mounts: list[Mount], rootfs: str) -> str:
    """Where the rootfs is in a namespace with these mounts: its path before pivot_root, "" after.

    runc and crun bind the rootfs onto itself before pivot_root, so a mount there marks
    a container that has not pivoted yet (every stage a hook runs at).
    """
    mounted = {mount.mountpoint for mount in mounts}
    return rootfs if os.path.realpath(rootfs) in mounted or rootfs in mounted else ""


def attach_before_start(source: ViewSource, pid: int | str, rootfs: str, proc_root: str) -> list[Outcome]:
    mounts = mounts_of(pid, proc_root)
    steps = plan_attach(mounts, source.source, source.dev, source.views, rootfs_prefix(mounts, rootfs))
    return carry_out(source, pid, steps, proc_root)
