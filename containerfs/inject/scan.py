"""Where views can go: every mount namespace (healing, detaching) or every container."""

from __future__ import annotations

from containerfs.containers.discover import ContainerRecord, discover
from containerfs.containers.resolve import Resolver
from containerfs.host.mounttable import mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject.attach import host_roots
from containerfs.procfs.mountinfo import Mount


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


def has_pivoted(mounts: list[Mount], unpivoted: set[tuple[str, str] | None]) -> bool:
    """Whether a mount table's root is the container's rootfs alone.

    runc's pivot_root(".", ".") stacks the old (host) root on the new one until it
    detaches it; since Linux 6.8 mountinfo lists mounts by id, not by stacking, so the
    last "/" line can be the new root while the host's is still on top of it: a view
    bound then lands on the host's tree and leaves with it.
    """
    roots = {(m.dev, m.root) for m in mounts if m.mountpoint == "/"}
    return bool(roots) and not roots & unpivoted


def ready_containers(proc_root: str, resolver: Resolver | None = None) -> list[ContainerRecord]:
    """The running containers (containers.discover) that have pivoted into their rootfs.

    One still being created has the runtime's root (host_roots), and its /proc there is
    the host's: views bound then would be left behind by its pivot_root.
    """
    unpivoted = host_roots(proc_root)
    ready = []
    for record in discover(proc_root, resolver):
        try:
            if has_pivoted(mounts_of(record.init_pid, proc_root), unpivoted):
                ready.append(record)
        except OSError:
            continue  # exited while we looked
    return ready
