"""Where views can go: every mount namespace (healing, detaching) or every container."""

from __future__ import annotations

from containerfs.containers.discover import ContainerRecord, discover
from containerfs.containers.resolve import Resolver
from containerfs.host.mounttable import mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject.attach import host_roots, root_mount


def mount_namespaces(proc_root: str) -> dict[str, int]:
    """mnt namespace link -> the lowest pid in it."""
    found: dict[str, int] = {}
    procfs = ProcFS(proc_root)
    for pid in procfs.pids():
        try:
            found.setdefault(procfs.process(pid).ns("mnt"), pid)
        except OSError:
            continue  # exited (ProcessGone), or a kernel thread with no namespace links to read
    return found


def ready_containers(proc_root: str, resolver: Resolver | None = None) -> list[ContainerRecord]:
    """The running containers (containers.discover) that have pivoted into their rootfs.

    One still being created has the runtime's root (host_roots), and its /proc there is
    the host's: views bound then would be left behind by its pivot_root.
    """
    unpivoted = host_roots(proc_root)
    ready = []
    for record in discover(proc_root, resolver):
        try:
            if root_mount(mounts_of(record.init_pid, proc_root)) not in unpivoted:
                ready.append(record)
        except OSError:
            continue  # exited while we looked
    return ready
