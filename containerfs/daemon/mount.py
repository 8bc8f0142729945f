"""`containerfs mount` and `umount`: mountpoint checks, then the FUSE adapter.

A daemon holds an flock on its pid file in the run directory from before it mounts until
it has exited, having taken its views out of the containers: `umount` sends it SIGTERM
(what systemd sends too) and waits for that lock, and a new daemon on the same
mountpoint waits for it before it mounts, so two daemons never work on one mountpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from containerfs.daemon import control
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.logsetup import configure_logging
from containerfs.daemon.report import daemon_report
from containerfs.daemon.runfiles import escape_path
from containerfs.host.errors import ProcessGone
from containerfs.host.fsread import read_text
from containerfs.host.mounttable import FSTYPE, OWN_MOUNTINFO, is_dead, mount_at
from containerfs.host.proc import ProcFS
from containerfs.inject.service import InjectionService, WatchPolicy
from containerfs.procfs.locks import parse_locks
from containerfs.status.collect import StatusCollector
from containerfs.sysinfo.paths import sysinfo_paths
from containerfs.sysinfo.service import SysinfoService
from containerfs.views.overlays import bind_targets

if TYPE_CHECKING:
    from containerfs.daemon.fuse_lowlevel import Service

log = logging.getLogger("containerfs")


# A predecessor on the same mountpoint takes its views out of every container: seconds
# with hundreds of containers.
PREDECESSOR_WAIT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 60.0


class MountpointBusy(Exception):
    pass


def pid_path(run_dir: str, mountpoint: str) -> str:
    """The daemon's pid file, locked (flock) by the daemon for as long as it runs."""
    return os.path.join(run_dir, f"{escape_path(mountpoint)}.pid")


def _locked(fd: int) -> bool:
    """Whether another process holds the lock of the pid file open at fd."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def running_daemon(run_dir: str, mountpoint: str) -> int | None:
    """The pid of the daemon that holds mountpoint's pid file (also while it stops), else None."""
    try:
        fd = os.open(pid_path(run_dir, mountpoint), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not _locked(fd):
            return None
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    # Locked but empty: a daemon between taking the lock and daemonizing.
    return int(text) if text.isdigit() else 0


def _wait_unlocked(run_dir: str, mountpoint: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while running_daemon(run_dir, mountpoint) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _take_lock(run_dir: str, mountpoint: str) -> int:
    """Lock the pid file; the descriptor stays open (and the lock held) for the daemon's life."""
    fd = os.open(pid_path(run_dir, mountpoint), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MountpointBusy(f"another containerfs daemon is starting on {mountpoint}") from None
    os.ftruncate(fd, 0)
    return fd


_libc = ctypes.CDLL(None, use_errno=True)


def _handled(signum: int) -> bool:
    """Whether a handler (libfuse's, in C: invisible to the signal module) catches signum."""
    action = ctypes.create_string_buffer(256)  # struct sigaction: the handler comes first
    if _libc.sigaction(signum, None, action) != 0:
        return False
    handler = ctypes.c_void_p.from_buffer(action).value or 0
    return handler not in (0, 1)  # SIG_DFL, SIG_IGN


class Lifetime:
    """The daemon's side of stopping, started once it serves (after libfuse daemonized).

    It writes the daemon's pid into the locked pid file and stops the daemon when its
    mountpoint is unmounted from outside (`fusermount3 -u`), which with views bound in
    containers leaves the filesystem connected and the daemon serving them.
    """

    def __init__(self, mountpoint: str, lock_fd: int, services: list[Service]) -> None:
        self.mountpoint = mountpoint
        self.lock_fd = lock_fd
        self.services = services
        self._main = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._main = threading.get_ident()
        os.ftruncate(self.lock_fd, 0)
        os.pwrite(self.lock_fd, f"{os.getpid()}\n".encode(), 0)
        mount = mount_at(self.mountpoint)
        dev = mount.dev if mount is not None else ""
        for service in self.services:
            service.start()
        self._thread = threading.Thread(target=self._watch, args=(dev,), name="lifetime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for service in reversed(self.services):
            service.stop()

    def _watch(self, dev: str) -> None:
        # The mount table's fd reports every change as an exceptional condition (POLLPRI).
        with open(ProcFS("/proc").self_process().path("mountinfo"), "rb") as table:
            poller = select.poll()
            poller.register(table, select.POLLPRI | select.POLLERR)
            while not self._stopping.is_set():
                poller.poll(1000)
                mount = mount_at(self.mountpoint)
                if mount is None or mount.dev != dev:
                    # libfuse unmounts too, once its loop has ended and it has put the
                    # default action back: a SIGTERM then would kill the daemon before
                    # it takes its views out of the containers.
                    if not self._stopping.is_set() and _handled(signal.SIGTERM):
                        log.info("%s was unmounted from outside: stopping", self.mountpoint)
                        signal.pthread_kill(self._main, signal.SIGTERM)
                    return


def _detach(mountpoint: str) -> None:
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=True, capture_output=True)


def prepare_mountpoint(mountpoint: str, mountinfo: str = OWN_MOUNTINFO) -> None:
    """Make mountpoint ready for a new daemon, or raise MountpointBusy saying why not."""
    mount = mount_at(mountpoint, mountinfo)
    if mount is not None:
        if is_dead(mountpoint) and mount.fstype.startswith("fuse"):
            log.warning("%s: detaching the dead mount of a daemon that is gone", mountpoint)
            _detach(mountpoint)
        elif mount.fstype == FSTYPE:
            raise MountpointBusy(f"{mountpoint} is already served by a running containerfs daemon")
        else:
            raise MountpointBusy(f"{mountpoint} is already a mount point ({mount.fstype} from {mount.source})")
    os.makedirs(mountpoint, exist_ok=True)


def _wait_for_predecessor(mountpoint: str, state_dir: str, timeout: float) -> None:
    pid = running_daemon(state_dir, mountpoint)
    if pid is None:
        return
    mount = mount_at(mountpoint)
    if mount is not None and mount.fstype == FSTYPE and not is_dead(mountpoint):
        return  # serving, not stopping: prepare_mountpoint says so
    print(f"containerfs: waiting for the daemon (pid {pid}) that is stopping on {mountpoint}", file=sys.stderr)
    if not _wait_unlocked(state_dir, mountpoint, timeout):
        raise MountpointBusy(f"the daemon (pid {pid}) on {mountpoint} is still stopping after {timeout:g} s")


def _lock_mountpoint(mountpoint: str, timeout: float) -> int:
    """Lock the directory under the mountpoint for the daemon's life (the descriptor stays open).

    The pid file's lock is per run directory; this one holds across them.  It matters:
    a daemon that stops unmounts its mountpoint path on the way out (libfuse does, when
    its loop ends), which would take a newer daemon's mount with it.
    """
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            os.close(fd)
            raise MountpointBusy(f"the daemon that served {mountpoint} is still stopping after {timeout:g} s")
        if not said:
            print(f"containerfs: waiting for the daemon that is stopping on {mountpoint}", file=sys.stderr)
            said = True
        time.sleep(0.05)


def mount(
    mountpoint: str, options: Options, foreground: bool, log_level: str, state_dir: str, watch: WatchPolicy | None
) -> int:
    if foreground:
        configure_logging(log_level, "%(asctime)s containerfs %(levelname)s %(message)s")
    else:
        configure_logging(log_level, None, "containerfs[%(process)d]: %(levelname)s %(message)s")
    mountpoint = os.path.abspath(mountpoint)
    # A daemon keeps no directory busy; libfuse would also record a mount source that
    # names a file in the working directory as that file's path.
    os.chdir("/")
    try:
        control_path = control.socket_path(mountpoint, state_dir)
        sysinfo_sockets = sysinfo_paths(mountpoint, state_dir)
        # Made now, so a run directory that cannot exist stops us before mounting.
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        _wait_for_predecessor(mountpoint, state_dir, PREDECESSOR_WAIT_SECONDS)
        prepare_mountpoint(mountpoint)
        _lock_mountpoint(mountpoint, PREDECESSOR_WAIT_SECONDS)
        lock_fd = _take_lock(state_dir, mountpoint)
        fs = ContainerFS(options)
    except (MountpointBusy, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"containerfs: cannot mount: {err}", file=sys.stderr)
        return 1
    from containerfs.daemon.fuse_lowlevel import libfuse_version, serve

    injection = InjectionService(
        mountpoint,
        options.proc_root,
        state_dir,
        watch,
        fs.hierarchies.container_dir(),
        lambda: tuple(bind_targets(fs.views())),
    )
    status = control.ControlServer(
        control_path, StatusCollector(functools.partial(daemon_report, fs), mountpoint, libfuse_version()).handle
    )
    sysinfo = SysinfoService(fs, sysinfo_sockets)
    try:
        serve(fs, mountpoint, foreground, [Lifetime(mountpoint, lock_fd, [injection, status, sysinfo])])
    except RuntimeError as err:
        print(f"containerfs: mounting {mountpoint} failed (libfuse error {err})", file=sys.stderr)
        return 1
    injection.detach_all()
    _remove_pid_file(state_dir, mountpoint, lock_fd)
    return 0


def _remove_pid_file(run_dir: str, mountpoint: str, lock_fd: int) -> None:
    # Still locked until we exit; a waiter that sees no file may start: our work is done.
    path = pid_path(run_dir, mountpoint)
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == os.fstat(lock_fd).st_ino:
            os.unlink(path)


def _exited(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (a daemon run by a supervisor)."""
    try:
        return ProcFS("/proc").process(pid).stat().state in ("Z", "X")
    except ProcessGone:
        return True


def _wait_exited(pid: int, deadline: float) -> bool:
    while not _exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _signal(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def mountpoint_holder(mountpoint: str, proc_root: str = "/proc") -> tuple[int, str] | None:
    """The daemon that holds the lock on the directory under mountpoint, whatever its run dir.

    (its pid, and a /proc path that reopens that directory.)  Its descriptor names the
    mountpoint's path but is the directory the mount covers: not the mount's device, and
    flock-ed (/proc/locks); a reader that has the mountpoint open holds the mount's root.
    """
    procfs = ProcFS(proc_root)
    mount = mount_at(mountpoint, os.path.join(proc_root, "self", "mountinfo"))
    try:
        locked = {(lock.major, lock.minor, lock.inode) for lock in parse_locks(read_text(f"{proc_root}/locks"))}
    except OSError:
        return None
    found: dict[int, str] = {}
    for pid in procfs.pids():
        fd_dir = procfs.process(pid).path("fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # exited, or a kernel thread
        for fd in fds:
            path = os.path.join(fd_dir, fd)
            try:
                if os.readlink(path) != mountpoint:
                    continue
                st = os.stat(path)
            except OSError:
                continue
            if mount is not None and f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" == mount.dev:
                continue  # the mount's own root: a reader, not the daemon
            if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in locked:
                found[pid] = path
    for pid, path in sorted(found.items()):
        # The daemon, not a child it forked to enter a namespace (that inherits the descriptor).
        try:
            if procfs.process(pid).status().ppid not in found:
                return pid, path
        except OSError:
            continue
    return None


def _wait_dir_unlocked(path: str, deadline: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return True  # the holder is gone, and its descriptor with it
    try:
        while _locked(fd):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
    finally:
        os.close(fd)
    return True


def _stopped(pid: int, mountpoint: str, timeout: float) -> int:
    print(
        f"containerfs: the daemon (pid {pid}) on {mountpoint} has not stopped within {timeout:g} s;"
        " it may still be taking its views out of containers",
        file=sys.stderr,
    )
    return 1


def umount(mountpoint: str, run_dir: str, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """Stop the daemon at mountpoint cleanly and wait until it has exited; detach a dead mount."""
    mountpoint = os.path.abspath(mountpoint)
    pid = running_daemon(run_dir, mountpoint)
    if not pid and (holder := mountpoint_holder(mountpoint)) is not None:
        # A daemon with another --run-dir: found by the lock it holds on its mountpoint.
        pid, locked_dir = holder
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        if not (_wait_dir_unlocked(locked_dir, deadline) and _wait_exited(pid, deadline)):
            return _stopped(pid, mountpoint, timeout)
        return 0
    if pid:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        # The lock goes with the record written; the process a moment later.
        if not (_wait_unlocked(run_dir, mountpoint, timeout) and _wait_exited(pid, deadline)):
            print(
                f"containerfs: the daemon (pid {pid}) on {mountpoint} has not stopped within {timeout:g} s;"
                " it may still be taking its views out of containers",
                file=sys.stderr,
            )
            return 1
        return 0
    mount = mount_at(mountpoint)
    if mount is None:
        print(f"containerfs: nothing is mounted at {mountpoint}", file=sys.stderr)
        return 1
    if mount.fstype != FSTYPE:
        print(f"containerfs: {mountpoint} is not a containerfs mount ({mount.fstype})", file=sys.stderr)
        return 1
    if not is_dead(mountpoint):
        # No daemon holds the mountpoint's lock (one from before it had one): unmounting makes it stop.
        print(f"containerfs: no daemon of {mountpoint} found; unmounting it", file=sys.stderr)
    with contextlib.suppress(subprocess.CalledProcessError):
        _detach(mountpoint)
    if mount_at(mountpoint) is not None:
        print(f"containerfs: could not unmount {mountpoint}", file=sys.stderr)
        return 1
    return 0
