"""Which container a process belongs to: the one definition of a container.

The FUSE request carries the caller's host pid; discovery (status, inject --all, the
watcher) asks the same question of every process.  Namespaces decide:

* host pid and mount namespaces: a host process, which reads the host's files;
* host pid namespace, own mount namespace (`docker run --pid=host`): its own cgroup;
* own pid namespace: the cgroup of that namespace's init, for each controller where the
  caller's cgroup lies inside the init's (a shell in a sub-cgroup sees its whole
  container); elsewhere the caller's own cgroup (pods sharing one pid namespace, where
  the init is the pause container: lxcfs #543).

A process whose container would be the root cgroup is a host process (`unshare -p`).

On cgroup v2 a caller in a cgroup namespace of its own is lifted to that namespace's root
when it lies below it: the container's cgroup, even when every process of the container
moved to sub-cgroups (systemd's init.scope, a delegated subtree: v2 allows no processes
in a cgroup that enables controllers for its children).
"""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import ParseError, ProcessGone
from containerfs.host.proc import ProcFS
from containerfs.host.ttl import TtlCache
from containerfs.procfs.process import ProcStatus

# Pruned of exited containers' namespaces when full: small enough that the namespaces of
# thousands of short-lived containers do not pile up.
_MAX_CACHED_NAMESPACES = 1024


class Container(NamedTuple):
    cgroups: dict[str, str]  # controller -> cgroup path ("" for v2)
    init_pid: int | None  # the init of the reader's pid namespace; None in the host's


def naming_path(cgroups: dict[str, str]) -> str:
    """The cgroup path a container is known by: memory's, else another controller's, else v2's."""
    for controller in ("memory", "pids", "cpu", "cpuacct", ""):
        path = cgroups.get(controller)
        if path is not None:
            return path
    return next(iter(cgroups.values()), "/")


def within(path: str, ancestor: str) -> bool:
    """Whether cgroup path is ancestor or lies below it."""
    return path == ancestor or ancestor == "/" or path.startswith(ancestor.rstrip("/") + "/")


class Resolver:
    def __init__(self, proc_root: str, membership_seconds: float = 1.0) -> None:
        self.proc_root = proc_root
        self.procfs = ProcFS(proc_root)
        # The daemon runs in the host's namespaces: its own links name "the host".
        self.host_pidns = self.ns("self", "pid")
        self.host_mntns = self.ns("self", "mnt")
        self.host_cgroupns = self._cgroupns("self")
        self._init_by_ns: dict[str, int] = {}
        self._root_by_cgroupns: dict[str, str | None] = {}
        # Processes rarely change cgroups; a reader's container is re-resolved after this
        # long, or at once if its pid now names a process in other namespaces.
        self._recent: TtlCache[tuple[tuple[str, str], Container | None]] = TtlCache(membership_seconds)

    def ns(self, pid: int | str, kind: str) -> str:
        return self.procfs.process(pid).ns(kind)

    def cgroups_of(self, pid: int) -> dict[str, str]:
        return self.procfs.process(pid).cgroups()

    def container_cgroups_of(self, pid: int) -> dict[str, str]:
        """pid's cgroups, v2's raised to the root of its cgroup namespace (its container's)."""
        return self._lifted(pid, self.cgroups_of(pid))

    def resolve(self, pid: int) -> Container | None:
        """The caller's container, or None for a host process."""
        namespaces = (self.ns(pid, "pid"), self.ns(pid, "mnt"))
        cached, container = self._recent.get(pid, lambda: (namespaces, self.container_in(pid, *namespaces)))
        if cached != namespaces:  # the pid now names another process, elsewhere
            container = self.container_in(pid, *namespaces)
            self._recent.put(pid, (namespaces, container))
        return container

    def forget(self, pid: int) -> None:
        """Resolve pid afresh at its next read (its cgroup vanished or changed)."""
        self._recent.drop(pid)

    def container_in(self, pid: int, pidns: str, mntns: str) -> Container | None:
        """The container of pid, a process in namespaces pidns and mntns; None for a host process."""
        if pidns == self.host_pidns:
            if mntns == self.host_mntns:
                return None
            container = Container(self.container_cgroups_of(pid), None)
        else:
            container = self._in_pid_namespace(pid, pidns)
        return None if naming_path(container.cgroups) == "/" else container

    def _in_pid_namespace(self, pid: int, pidns: str) -> Container:
        init = self.init_of(pid, pidns)
        own = self.container_cgroups_of(pid)
        if init == pid:
            return Container(own, pid)
        init_cgroups = self.cgroups_of(init)
        chosen = {}
        for controller, path in own.items():
            init_path = init_cgroups.get(controller)
            chosen[controller] = init_path if init_path is not None and within(path, init_path) else path
        # Uptime counts from the namespace's init even for a pod member: inside the
        # namespace the init is pid 1, and nothing there may look older than "boot".
        return Container(chosen, init)

    def _cgroupns(self, pid: int | str) -> str | None:
        try:
            return self.ns(pid, "cgroup")
        except OSError:
            return None  # no cgroup namespaces (before Linux 4.6)

    def _lifted(self, pid: int, cgroups: dict[str, str]) -> dict[str, str]:
        """cgroups with the v2 path raised to the root of pid's cgroup namespace."""
        path = cgroups.get("")
        cgroupns = self._cgroupns(pid)
        if path is None or cgroupns is None or cgroupns == self.host_cgroupns:
            return cgroups
        root = self._root_by_cgroupns.get(cgroupns)
        # A remembered root that does not hold the path belongs to an exited container
        # whose namespace number was reused: look again.
        if cgroupns not in self._root_by_cgroupns or (root is not None and not within(path, root)):
            if len(self._root_by_cgroupns) >= _MAX_CACHED_NAMESPACES:
                self._root_by_cgroupns.clear()  # namespaces of exited containers, mostly
            root = self._root_by_cgroupns[cgroupns] = self._cgroupns_root(pid)
        if root is None or root == path or not within(path, root):
            return cgroups
        return {**cgroups, "": root}

    def _cgroupns_root(self, pid: int) -> str | None:
        """The root of pid's cgroup namespace, named from ours; None if it mounted no cgroup2.

        No file names a namespace's root, but a cgroup2 mount made inside the namespace
        has it as its root, and mountinfo prints that root from the reader's namespace.
        """
        mounts = [m for m in self.procfs.process(pid).mountinfo() if m.fstype == "cgroup2"]
        if not mounts:
            return None
        standard = [m for m in mounts if m.mountpoint == "/sys/fs/cgroup"]
        root = (standard or mounts)[-1].root
        # "/" is a bind of the host's tree (no namespace root to learn), "/.." a mount
        # from outside ours.
        return None if root == "/" or root.startswith("/..") else root

    def init_of(self, pid: int, pidns: str) -> int:
        """The init (pid 1) of pidns, found from pid, a process in it; remembered per namespace."""
        cached = self._init_by_ns.get(pidns)
        if cached is not None and self._same_ns(cached, pidns):
            return cached
        init = self._find_init(pid, pidns)
        if len(self._init_by_ns) >= _MAX_CACHED_NAMESPACES:
            # Namespaces of exited containers: keep only entries that still hold.
            self._init_by_ns = {ns: p for ns, p in self._init_by_ns.items() if self._same_ns(p, ns)}
        self._init_by_ns[pidns] = init
        return init

    def _same_ns(self, pid: int, pidns: str) -> bool:
        try:
            return self.ns(pid, "pid") == pidns
        except OSError:  # gone (ProcessGone), or hidden from us
            return False

    def _status(self, pid: int) -> ProcStatus:
        return self.procfs.process(pid).status()

    def _find_init(self, pid: int, pidns: str) -> int:
        # Usually an ancestor: walk up while the parent shares the namespace.  A process
        # entered with setns (docker exec) has its parent outside, hence the scan below.
        current = pid
        while True:
            status = self._status(current)
            if status.nspid[-1] == 1:
                return current
            if status.ppid <= 0 or not self._same_ns(status.ppid, pidns):
                break
            current = status.ppid
        for other in self.procfs.pids():
            if not self._same_ns(other, pidns):
                continue
            try:
                if self._status(other).nspid[-1] == 1:
                    return other
            except (ProcessGone, ParseError):
                continue  # exited while we looked
        raise ProcessGone(f"no init process found for pid namespace {pidns}")
