"""`containerfs inject`, `oci-hook`, `lxc-hook` and `docker-args`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TextIO

from containerfs.containers.resolve import Resolver
from containerfs.daemon.logsetup import configure_logging
from containerfs.host.errors import ProcessGone
from containerfs.host.mounttable import mounts_of
from containerfs.inject.attach import NotServing, ViewSource, carry_out, live_source
from containerfs.inject.hook import HookError, attach_before_start, hook_process, parse_state
from containerfs.inject.namespace import Outcome
from containerfs.inject.plan import container_path, plan_attach
from containerfs.inject.policy import declined
from containerfs.inject.scan import ready_containers
from containerfs.inject.syscalls import MountApiMissing

log = logging.getLogger("containerfs.inject")


def _summary(outcomes: list[Outcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    failures = [o.summary for o in outcomes if o.failed]
    text = ", ".join(f"{n} {what}" for what, n in counts.items())
    return text + (f" ({'; '.join(failures)})" if failures else "")


def _failed(outcomes: list[Outcome]) -> bool:
    return any(o.failed for o in outcomes)


def inject_into(source: ViewSource, pid: int, proc_root: str) -> list[Outcome]:
    """Make every view present and live in the running container of pid."""
    resolver = Resolver(proc_root)
    try:
        mntns = resolver.ns(pid, "mnt")
    except ProcessGone:
        raise LookupError(f"no process {pid}") from None
    if mntns == resolver.host_mntns:
        raise LookupError(f"pid {pid} shares the host's mount namespace; only container processes get views")
    steps = plan_attach(mounts_of(pid, proc_root), source.source, source.dev, source.views)
    return carry_out(source, pid, steps, proc_root)


def inject(mountpoint: str, pids: Iterable[int], every: bool, proc_root: str, out: TextIO = sys.stdout) -> int:
    try:
        source = live_source(mountpoint)
    except NotServing as err:
        print(f"containerfs: {err}", file=sys.stderr)
        return 1
    targets = list(pids)
    if every:
        targets += [c.init_pid for c in ready_containers(proc_root) if c.init_pid not in targets]
    status = 0
    for pid in targets:
        try:
            outcomes = inject_into(source, pid, proc_root)
        except MountApiMissing as err:
            print(f"containerfs: {err.strerror}", file=sys.stderr)
            return 1
        except (LookupError, OSError) as err:
            print(f"containerfs: pid {pid}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"pid {pid}: {_summary(outcomes)}", file=out)
        if _failed(outcomes):
            status = 1
    return status


def _hook_logging(log_file: str | None) -> None:
    # A runtime shows a hook's output only when the hook fails: a container that starts
    # with host views must say so where operators look.
    hook_format = "containerfs-hook[%(process)d]: %(message)s"
    configure_logging(logging.INFO, hook_format, hook_format, log_file, log)


def oci_hook(mountpoint: str, require_daemon: bool, proc_root: str, stdin: TextIO, log_file: str | None) -> int:
    _hook_logging(log_file)
    try:
        state = parse_state(stdin.read())
    except HookError as err:
        # Fail open: a container must not fail to start over what its runtime passed us.
        if require_daemon:
            log.error("container refused: %s", err)
            return 1
        log.error("container starts with the host's files: %s", err)
        return 0
    pid = hook_process(state.pid)
    why = declined(state.annotations, os.path.abspath(mountpoint))
    return _attach_before_start(mountpoint, require_daemon, proc_root, state.id, pid, state.rootfs, why)


def lxc_hook(mountpoint: str, require_daemon: bool, proc_root: str, log_file: str | None) -> int:
    _hook_logging(log_file)
    rootfs = os.environ.get("LXC_ROOTFS_MOUNT")
    if not rootfs:
        log.error("LXC_ROOTFS_MOUNT is not set: run this as an lxc.hook.mount")
        return 1
    name = os.environ.get("LXC_NAME", "")
    # LXC runs mount hooks inside the container's mount namespace.
    return _attach_before_start(mountpoint, require_daemon, proc_root, name, "self", rootfs, "")


def _attach_before_start(
    mountpoint: str, require_daemon: bool, proc_root: str, name: str, pid: int | str, rootfs: str, declined: str
) -> int:
    if declined:
        log.info("container %s keeps the host's files: %s", name, declined)
        return 0
    try:
        source = live_source(mountpoint)
        outcomes = attach_before_start(source, pid, rootfs, proc_root)
    except (NotServing, OSError) as err:
        if require_daemon:
            log.error("container %s refused: %s", name, err)
            return 1
        log.warning("container %s starts with the host's files: %s", name, err)
        return 0
    log.info("container %s: %s", name, _summary(outcomes))
    return 1 if require_daemon and _failed(outcomes) else 0


def docker_args(mountpoint: str) -> str:
    """The -v flags for the views the live daemon at mountpoint serves; NotServing without one.

    Without a daemon, docker would create each missing source as an empty directory on
    the host and then fail to bind a directory over a file.
    """
    return docker_flags(live_source(mountpoint))


def docker_flags(source: ViewSource) -> str:
    """One read-only -v per view runc accepts as a spec mount."""
    # runc refuses spec mounts under /proc but at a few files: the others (vmstat) and the
    # block devices' stat files come with the OCI hook, `inject` or the watcher.
    targets = [v for v in source.views if _spec_mount(v)]
    return " ".join(f"-v {os.path.join(source.mountpoint, view)}:{container_path(view)}:ro" for view in targets)


def _spec_mount(view: str) -> bool:
    if view.startswith("proc/"):
        return view in _SPEC_PROC_MOUNTS
    # A block device's stat file sits under its bus path (sys/devices/pci0000:00/...):
    # docker's -v splits at the colons and refuses the whole `docker run`.
    return "/block/" not in view and ":" not in view


_SPEC_PROC_MOUNTS = {
    f"proc/{name}" for name in ("cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime", "loadavg")
}
