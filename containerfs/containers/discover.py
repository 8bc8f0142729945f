"""Every running container on the host, found in one scan of /proc.

A container is what containers.resolve says a process belongs to, the definition the
daemon serves views by: a pid namespace other than the host's, named by its init; a
member of a pod that shares the pause container's pid namespace with its own mount
namespace and a cgroup outside the init's (lxcfs #543); a process in the host's pid
namespace with its own mount namespace (`--pid=host`).  The root cgroup is not a
container.

discover() is cheap enough to run often: two readlinks per process, and
/proc/PID/cgroup only per new pair of namespaces.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from containerfs.containers.resolve import Resolver, naming_path
from containerfs.host.errors import Unavailable


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


def _record(pid: int, pid_ns: str, mnt_ns: str, cgroups: dict[str, str]) -> ContainerRecord:
    path = naming_path(cgroups)
    return ContainerRecord(pid, pid_ns, mnt_ns, cgroups, path, *container_name(path))


def discover(proc_root: str, resolver: Resolver | None = None) -> list[ContainerRecord]:
    """The running containers, ordered by their first process's pid.

    Pass a long-lived resolver to keep its pid-namespace -> init cache between calls.
    """
    resolver = resolver if resolver is not None else Resolver(proc_root)
    seen: set[tuple[str, str]] = set()  # (pid ns, mnt ns) already accounted for
    records: dict[str, ContainerRecord] = {}  # naming path -> the container's record
    for pid in resolver.procfs.pids():
        try:
            namespaces = (resolver.ns(pid, "pid"), resolver.ns(pid, "mnt"))
            if namespaces in seen:
                continue
            seen.add(namespaces)
            container = resolver.container_in(pid, *namespaces)
            if container is None:
                continue
            path = naming_path(container.cgroups)
            if path in records:
                continue  # another mount namespace of a container already found
            record = _record(pid, *namespaces, container.cgroups)
            init = container.init_pid
            if init is not None and init != pid and naming_path(resolver.container_cgroups_of(init)) == path:
                # Found from a member: the container is named by its init.
                record = _record(init, namespaces[0], resolver.ns(init, "mnt"), container.cgroups)
            records[path] = record
        except (OSError, Unavailable):
            continue  # exited while we looked
    return sorted(records.values(), key=lambda r: r.init_pid)
