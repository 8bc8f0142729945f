"""The daemon's injection duties: heal at start, watch for new containers, detach at stop.

They run in a thread once the filesystem serves (the views they bind are read through
the daemon itself), and each namespace is entered from a forked child (namespace.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import NamedTuple

from containerfs.containers.resolve import Resolver
from containerfs.daemon.runfiles import escape_path
from containerfs.host.fsread import read_text
from containerfs.host.mounttable import mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject.attach import (
    NotServing,
    ViewSource,
    carry_out,
    dead_source,
    live_source,
    served_views,
)
from containerfs.inject.cgroupwatch import CgroupCreations
from containerfs.inject.namespace import Outcome
from containerfs.inject.plan import Action, Step, plan_attach, plan_detach, plan_heal
from containerfs.inject.policy import WatchPolicy
from containerfs.inject.scan import mount_namespaces, ready_containers

log = logging.getLogger("containerfs.inject")


class Taken(NamedTuple):
    """A container a clean stop took the views from, recorded for the next daemon."""

    pid: int
    mnt_ns: str
    started: int  # clock ticks after boot
    views: list[str]


def record_path(state_dir: str, mountpoint: str) -> str:
    """Where a stopping daemon lists the containers it took its views from."""
    return os.path.join(state_dir, f"{escape_path(mountpoint)}.detached.json")


# After a cgroup appears, look this often for its container, for this long: the runtime
# moves the container's process in and pivots into its rootfs within moments.
BURST_INTERVAL_SECONDS = 0.1
BURST_SECONDS = 3.0


class InjectionService:
    def __init__(
        self,
        mountpoint: str,
        proc_root: str,
        state_dir: str,
        watch: WatchPolicy | None,
        cgroup_dir: str | None = None,
    ) -> None:
        self.mountpoint = mountpoint
        self.proc_root = proc_root
        self.record = record_path(state_dir, mountpoint)
        self.watch = watch
        self.cgroup_dir = cgroup_dir  # the hierarchy whose new directories announce containers
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._seen: set[str] = set()  # mount namespaces already looked at
        # Kept between passes: it remembers each pid namespace's init.
        self._resolver = Resolver(proc_root)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="injection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            source = live_source(self.mountpoint)
            self.heal(source)
            if self.watch is not None:
                self._watch(source, self.watch)
        except NotServing as err:
            log.warning("injection stopped: %s", err)
        except Exception:
            # The views keep being served; only injection stops.
            log.exception("injection failed")

    def _watch(self, source: ViewSource, policy: WatchPolicy) -> None:
        creations = None
        if self.cgroup_dir is not None:
            try:
                creations = CgroupCreations(self.cgroup_dir)
            except OSError as err:
                log.warning(
                    "no inotify on %s (%s): looking for containers every %gs", self.cgroup_dir, err, policy.interval
                )
        burst_until = 0.0
        try:
            while not self._stop.is_set():
                timeout = BURST_INTERVAL_SECONDS if time.monotonic() < burst_until else policy.interval
                if creations is None:
                    self._stop.wait(timeout)
                elif creations.wait(timeout, self._wake_r):
                    burst_until = time.monotonic() + BURST_SECONDS
                if not self._stop.is_set():
                    source = self._refresh(source)
                    self.watch_once(source, policy)
        finally:
            if creations is not None:
                creations.close()

    def _refresh(self, source: ViewSource) -> ViewSource:
        """The files served now: a block device added since the last pass brings a view.

        When they changed, every container is planned again on this pass: the new views
        are attached, the present ones kept (no fork where nothing changes).
        """
        try:
            views = served_views(self.mountpoint)
        except OSError:
            return source
        if views != source.views:
            self._seen.clear()
            source = source._replace(views=views)
        return source

    def _apply(self, source: ViewSource, pid: int, steps: list[Step], what: str) -> list[Outcome]:
        try:
            outcomes = carry_out(source, pid, steps, self.proc_root)
        except OSError as err:
            log.warning("%s in pid %d failed: %s", what, pid, err)
            return []
        for outcome in outcomes:
            if outcome.failed:
                log.warning("%s in pid %d: %s", what, pid, outcome.summary)
        return outcomes

    def heal(self, source: ViewSource) -> int:
        """Replace stale views in every namespace, and give back views a clean stop took away."""
        started = time.monotonic()
        healed = 0
        namespaces = mount_namespaces(self.proc_root)
        for pid in namespaces.values():
            try:
                steps = plan_heal(mounts_of(pid, self.proc_root), source.source, source.dev)
            except OSError:
                continue  # exited while we looked
            if steps:
                healed += any(o.done for o in self._apply(source, pid, steps, "healing"))
        for taken in self._take_record():
            try:
                if self._identity(taken.pid) != (taken.mnt_ns, taken.started):
                    continue  # that container is gone (a namespace number may have been reused)
                steps = plan_attach(mounts_of(taken.pid, self.proc_root), source.source, source.dev, taken.views)
            except (OSError, ValueError):
                continue
            healed += any(o.done for o in self._apply(source, taken.pid, steps, "re-injecting"))
        log.info("healed views in %d containers in %.0f ms", healed, (time.monotonic() - started) * 1000)
        return healed

    def watch_once(self, source: ViewSource, policy: WatchPolicy) -> None:
        containers = ready_containers(self.proc_root, self._resolver)
        self._seen &= {c.mnt_ns for c in containers}
        for container in containers:
            if container.mnt_ns in self._seen:
                continue
            self._seen.add(container.mnt_ns)
            if not policy.admits(container.cgroup):
                continue
            try:
                mounts = mounts_of(container.init_pid, self.proc_root)
            except OSError:
                continue
            steps = plan_attach(mounts, source.source, source.dev, source.views)
            outcomes = self._apply(source, container.init_pid, steps, "injecting")
            attached = sum(o.done and o.step.action is not Action.KEEP for o in outcomes)
            if attached:
                log.info(
                    "injected %d views into %s %s (pid %d)",
                    attached,
                    container.kind,
                    container.name,
                    container.init_pid,
                )

    def detach_all(self) -> None:
        """After a clean stop: take the views out of every container, and note where from.

        A view of a stopped daemon fails every read with ENOTCONN; the container's own
        file underneath serves host figures until the daemon is back and re-injects.
        """
        source = dead_source(self.mountpoint)
        taken: list[Taken] = []
        for pid in mount_namespaces(self.proc_root).values():
            try:
                steps = plan_detach(mounts_of(pid, self.proc_root), source.source)
                identity = self._identity(pid)
            except (OSError, ValueError):
                continue
            if steps and any(o.done for o in self._apply(source, pid, steps, "detaching")):
                taken.append(Taken(pid, *identity, sorted({step.view for step in steps})))
        if taken:
            os.makedirs(os.path.dirname(self.record), mode=0o700, exist_ok=True)
            with open(self.record, "w") as f:
                json.dump([t._asdict() for t in taken], f)
            log.info("took the views out of %d containers until the daemon is back", len(taken))

    def _identity(self, pid: int) -> tuple[str, int]:
        """A process's mount namespace and start time: together they name one container."""
        process = ProcFS(self.proc_root).process(pid)
        return process.ns("mnt"), process.stat().starttime

    def _take_record(self) -> list[Taken]:
        try:
            text = read_text(self.record)
            os.unlink(self.record)  # read once: a bad record must not haunt every start
            entries = json.loads(text)
            return [
                Taken(int(e["pid"]), str(e["mnt_ns"]), int(e["started"]), [str(v) for v in e["views"]]) for e in entries
            ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as err:
            log.warning("ignoring %s: %s", self.record, err)
            return []
