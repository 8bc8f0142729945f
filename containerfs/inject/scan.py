"""The host's mount namespaces, each with one process in it, from one /proc scan."""

from __future__ import annotations

import os
from typing import NamedTuple

from containerfs.inject.attach import host_roots, mounts_of, root_mount


class Namespaces(NamedTuple):
    mnt: str  # "mnt:[4026531841]"
    pid: str


def namespaces_of(pid: int | str, proc_root: str) -> Namespaces:
    return Namespaces(os.readlink(f"{proc_root}/{pid}/ns/mnt"), os.readlink(f"{proc_root}/{pid}/ns/pid"))


def mount_namespaces(proc_root: str) -> dict[str, int]:
    """mnt namespace link -> the lowest pid in it."""
    found: dict[str, int] = {}
    for pid in sorted(int(entry) for entry in os.listdir(proc_root) if entry.isdigit()):
        try:
            found.setdefault(os.readlink(f"{proc_root}/{pid}/ns/mnt"), pid)
        except OSError:
            continue  # exited, or a kernel thread with no namespace links to read
    return found


def containers_ready(proc_root: str) -> list[int]:
    """One process per container that has pivoted into its rootfs (see host_roots)."""
    unpivoted = host_roots(proc_root)
    ready = []
    for pid in container_namespaces(proc_root).values():
        try:
            if root_mount(mounts_of(pid, proc_root)) not in unpivoted:
                ready.append(pid)
        except OSError:
            continue  # exited while we looked
    return ready


def container_namespaces(proc_root: str) -> dict[str, int]:
    """Like mount_namespaces, only those whose process is also in a pid namespace of its own.

    Both namespaces mark a container; a mount namespace alone is also what systemd
    services with PrivateTmp= and similar sandboxes have.
    """
    host = namespaces_of("self", proc_root)
    found = {}
    for mntns, pid in mount_namespaces(proc_root).items():
        try:
            if mntns != host.mnt and os.readlink(f"{proc_root}/{pid}/ns/pid") != host.pid:
                found[mntns] = pid
        except OSError:
            continue
    return found
