"""Every running container on the host, found in one scan of /proc.

A container is the init of a pid namespace other than the host's (what the resolver
calls a reader's container), plus each process with its own mount namespace inside such
a namespace whose cgroup lies outside the init's: the members of a pod that share the
pause container's pid namespace (lxcfs #543).  Processes in the root cgroup are not
containers (`unshare -p` on the host).

discover() is cheap enough to run often: one readlink per process, one more for
processes in other pid namespaces, and /proc/PID/cgroup only per new namespace.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from containerfs.containers.resolve import Resolver, within


class ContainerName(NamedTuple):
    kind: str  # docker, podman, kubernetes, lxc, runc (anything else: plain runc, crun, ...)
    name: str  # readable: the LXC name, the last cgroup component, else a short id
    id: str  # the engine's full id (the name where there is none)
    short_id: str  # 12 characters of a hex id, else the name


class ContainerRecord(NamedTuple):
    init_pid: int  # the container's first process (the pid namespace's init, or a pod member's)
    pid_ns: str  # e.g. "pid:[4026532298]"
    mnt_ns: str
    cgroups: dict[str, str]  # controller -> cgroup path, as /proc/PID/cgroup gives them ("" for v2)
    cgroup: str  # the path the container is named from
    kind: str
    name: str
    id: str
    short_id: str


_HEX_ID = r"[0-9a-f]{64}"
# Patterns for one cgroup path component, most specific first.
_SCOPES = [
    (re.compile(rf"^docker-({_HEX_ID})\.scope$"), "docker"),
    (re.compile(rf"^libpod-({_HEX_ID})(?:\.scope)?$"), "podman"),
    (re.compile(rf"^cri-containerd-({_HEX_ID})\.scope$"), "kubernetes"),
    (re.compile(rf"^crio-({_HEX_ID})\.scope$"), "kubernetes"),
]
_HEX = re.compile(rf"^{_HEX_ID}$")
# cgroupfs `pod<uid>` and systemd `kubepods-burstable-pod<uid with _>.slice`
_POD = re.compile(r"^(?:kubepods-(?:[a-z]+-)?)?pod([0-9a-f_-]{36})(?:\.slice)?$")
_LXC_PAYLOAD = re.compile(r"^lxc\.payload[./](.+)$")


def _hex_name(kind: str, cid: str, pod_uid: str | None) -> ContainerName:
    if pod_uid is not None:
        # Pod members share the pod's uid prefix: readable as a group in a table.
        return ContainerName("kubernetes", f"pod{pod_uid[:8]}/{cid[:12]}", cid, cid[:12])
    return ContainerName(kind, cid[:12], cid, cid[:12])


def container_name(cgroup_path: str) -> ContainerName:
    """Who made a container, and its name, from its cgroup path alone."""
    parts = [p for p in cgroup_path.split("/") if p]
    pod_uid = None
    for part in parts:
        match = _POD.match(part)
        if match:
            pod_uid = match.group(1).replace("_", "-")
    # The deepest recognisable component names it: a container running systemd has its
    # init in a sub-cgroup (docker-<id>.scope/init.scope, lxc.payload.<name>/init.scope).
    for index in range(len(parts) - 1, -1, -1):
        part = parts[index]
        parent = parts[index - 1] if index else ""
        for pattern, kind in _SCOPES:
            match = pattern.match(part)
            if match:
                return _hex_name(kind, match.group(1), pod_uid)
        if _HEX.match(part) and (parent == "docker" or _POD.match(parent)):
            return _hex_name("docker", part, pod_uid)
        match = _LXC_PAYLOAD.match(part)
        if match:
            return ContainerName("lxc", match.group(1), match.group(1), match.group(1))
        if parent == "lxc":
            return ContainerName("lxc", part, part, part)
    name = parts[-1] if parts else "/"
    return ContainerName("runc", name, name, name)


def naming_path(cgroups: dict[str, str]) -> str:
    """The cgroup path a container is known by: memory's, else another controller's, else v2's."""
    for controller in ("memory", "pids", "cpu", "cpuacct", ""):
        path = cgroups.get(controller)
        if path is not None:
            return path
    return next(iter(cgroups.values()), "/")


def _record(pid: int, pid_ns: str, mnt_ns: str, cgroups: dict[str, str]) -> ContainerRecord | None:
    path = naming_path(cgroups)
    if path == "/":
        return None
    return ContainerRecord(pid, pid_ns, mnt_ns, cgroups, path, *container_name(path))


def discover(proc_root: str, resolver: Resolver | None = None) -> list[ContainerRecord]:
    """The running containers, ordered by their first process's pid.

    Pass a long-lived resolver to keep its pid-namespace -> init cache between calls.
    """
    resolver = resolver if resolver is not None else Resolver(proc_root)
    inits: dict[str, str] = {}  # pid namespace -> its init's naming path
    seen: set[tuple[str, str]] = set()  # (pid ns, mnt ns) already accounted for
    records: list[ContainerRecord] = []
    for pid in sorted(int(entry) for entry in os.listdir(proc_root) if entry.isdigit()):
        try:
            pid_ns = resolver.ns(pid, "pid")
            if pid_ns == resolver.host_pidns:
                continue
            mnt_ns = resolver.ns(pid, "mnt")
            if (pid_ns, mnt_ns) in seen:
                continue
            if pid_ns not in inits:
                init = resolver.init_of(pid, pid_ns)
                init_mnt = resolver.ns(init, "mnt")
                init_cgroups = resolver.container_cgroups_of(init)
                inits[pid_ns] = naming_path(init_cgroups)
                seen.add((pid_ns, init_mnt))
                record = _record(init, pid_ns, init_mnt, init_cgroups)
                if record is not None:
                    records.append(record)
                if init_mnt == mnt_ns:
                    continue
            seen.add((pid_ns, mnt_ns))
            # Its own mount namespace in another's pid namespace: a pod member, unless
            # its cgroup lies in the init's (a service with a private /tmp, say).
            cgroups = resolver.container_cgroups_of(pid)
            if within(naming_path(cgroups), inits[pid_ns]):
                continue
            record = _record(pid, pid_ns, mnt_ns, cgroups)
            if record is not None:
                records.append(record)
        except (OSError, ValueError, LookupError):
            continue  # exited while we looked
    return sorted(records, key=lambda r: r.init_pid)
