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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from containerfs.containers.discover import ContainerRecord
from containerfs.containers.resolve import Resolver
from containerfs.daemon.runfiles import escape_path
from containerfs.host.fsread import read_text
from containerfs.host.mounttable import FSTYPE, mounts_of
from containerfs.host.proc import ProcFS
from containerfs.inject.attach import (
    NotServing,
    ViewSource,
    carry_out,
    dead_source,
    own_source,
)
from containerfs.inject.cgroupwatch import CgroupCreations
from containerfs.inject.namespace import ABSENT, Outcome
from containerfs.inject.plan import Action, Step, plan_attach, plan_detach, plan_heal
from containerfs.inject.policy import WatchPolicy, declined, markers_from_environment
from containerfs.inject.runtime_state import annotations_of
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
# A container's namespace answers within milliseconds; one that does not (a hung FUSE or
# NFS mount at a target) is given up on after this, for this attempt.
NAMESPACE_TIMEOUT_SECONDS = 0.5
# Namespaces entered at once: a few hostile ones cannot hold up the others.
WORKERS = 4
# How long a new container may go without a runtime state (runc writes it just after the
# container's init has pivoted) before it is taken as one without annotations.
STATE_GRACE_SECONDS = 1.0
# A container created but not started (`runc create`, `ctr run` between its create and
# start) is still runc's own init: its environment, where CONTAINERFS_SKIP or
# CONTAINERFS_VIEWS_FROM may say "not this daemon", appears only when it execs.
CREATED_GRACE_SECONDS = 10.0
RUNC_INIT_COMM = "runc:["
# A container is looked at again until a later pass finds its views in place (a runtime
# still setting up its root can take them away), at most this many attempts, further
# apart each time, then given up on with a log line saying why.
MAX_ATTEMPTS = 5
RETRY_CAP_SECONDS = 2.0


@dataclass
class Attempts:
    """A container the watcher admitted that has not been seen with its views yet."""

    tries: int = 0
    next_try: float = 0.0  # monotonic time of the next look
    absent: frozenset[str] = frozenset()  # views whose target it does not have (no /sys)
    why: str = ""  # why the last attempt left it without its views


class InjectionService:
    def __init__(
        self,
        mountpoint: str,
        proc_root: str,
        state_dir: str,
        watch: WatchPolicy | None,
        cgroup_dir: str | None = None,
        views: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self.mountpoint = mountpoint
        # What the daemon serves, from its core: never by walking its own mount, which
        # would make the daemon wait on itself (see attach.own_source).
        self.views = views
        self.proc_root = proc_root
        self.record = record_path(state_dir, mountpoint)
        self.watch = watch
        self.cgroup_dir = cgroup_dir  # the hierarchy whose new directories announce containers
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._seen: set[str] = set()  # mount namespaces settled: views in place, declined or given up on
        self._pending: dict[str, Attempts] = {}  # admitted ones still without their views
        self._first_seen: dict[str, float] = {}  # new namespaces whose runtime state is not there yet
        self._own_dev: str | None = None  # our superblock: the views this daemon may take away
        self._views: tuple[str, ...] = ()  # the files it serves
        self.run_root = "/run"  # where the runtimes keep their containers' state
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
            source = own_source(self.mountpoint, self.views())
            self._own_dev, self._views = source.dev, source.views
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
                soon = time.monotonic() < burst_until or self._pending
                timeout = BURST_INTERVAL_SECONDS if soon else policy.interval
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
            views = self.views()
        except OSError:
            return source
        if views != source.views:
            self._seen.clear()
            self._pending.clear()
            source = source._replace(views=views)
            self._views = views
        return source

    def _apply(self, source: ViewSource, pid: int, steps: list[Step], what: str) -> list[Outcome]:
        try:
            outcomes = carry_out(source, pid, steps, self.proc_root, NAMESPACE_TIMEOUT_SECONDS)
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
                steps = plan_heal(mounts_of(pid, self.proc_root), source.source, source.dev, source.views)
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

    def _not_started(self, pid: int) -> bool:
        try:
            return ProcFS(self.proc_root).process(pid).read("comm").startswith(RUNC_INIT_COMM)
        except OSError:
            return False  # gone: the next pass finds no container

    def _environment_markers(self, pid: int) -> dict[str, str]:
        try:
            return markers_from_environment(ProcFS(self.proc_root).process(pid).environ())
        except (OSError, ValueError):
            return {}  # gone meanwhile (ProcessGone), or unreadable: its annotations still count

    def watch_once(self, source: ViewSource, policy: WatchPolicy) -> None:
        containers = ready_containers(self.proc_root, self._resolver)
        present = {c.mnt_ns for c in containers}
        self._seen &= present
        self._pending = {ns: a for ns, a in self._pending.items() if ns in present}
        self._first_seen = {ns: t for ns, t in self._first_seen.items() if ns in present}
        due: list[tuple[ContainerRecord, Attempts]] = []
        for container in containers:
            if container.mnt_ns in self._seen:
                continue
            if not policy.admits(container.cgroup):
                # Not settled: a process found before its runtime moved it into the
                # container's cgroup would otherwise keep the container out for good.
                continue
            attempts = self._pending.get(container.mnt_ns)
            if attempts is None:
                annotations = annotations_of(container.init_pid, self.run_root)
                marked = self._environment_markers(container.init_pid)
                # Until the init execs, its environment is the runtime's: markers may still come.
                not_started = not marked and self._not_started(container.init_pid)
                if not_started or (annotations is None and not marked):
                    first = self._first_seen.setdefault(container.mnt_ns, time.monotonic())
                    grace = CREATED_GRACE_SECONDS if not_started else STATE_GRACE_SECONDS
                    if time.monotonic() - first < grace:
                        continue  # looked at again on the next pass
                why = declined({**marked, **(annotations or {})}, self.mountpoint)
                if why:
                    self._seen.add(container.mnt_ns)
                    log.info("not injecting %s %s: %s", container.kind, container.name, why)
                    continue
                attempts = self._pending[container.mnt_ns] = Attempts()
            if time.monotonic() >= attempts.next_try:
                due.append((container, attempts))
        if len(due) <= 1:
            settled = [self._attend(source, *pair) for pair in due]
        else:
            with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="inject") as pool:
                settled = list(pool.map(lambda pair: self._attend(source, *pair), due))
        for (container, _), done in zip(due, settled):
            if done:
                self._seen.add(container.mnt_ns)
                self._pending.pop(container.mnt_ns, None)

    def _attend(self, source: ViewSource, container: ContainerRecord, attempts: Attempts) -> bool:
        """Give a container its missing views; True once it needs no more looks."""
        name = f"{container.kind} {container.name} (pid {container.init_pid})"
        try:
            mounts = mounts_of(container.init_pid, self.proc_root)
        except OSError as err:
            missing: list[Step] = []
            steps: list[Step] = []
            attempts.why = f"its mount table is unreadable: {err}"
        else:
            steps = plan_attach(mounts, source.source, source.dev, source.views)
            binds = (Action.ATTACH, Action.REPLACE)
            missing = [s for s in steps if s.action in binds and s.view not in attempts.absent]
            if not missing:
                others = sorted({m.source for m in mounts if m.fstype == FSTYPE and m.source != source.source})
                if others and not attempts.tries:
                    # Another daemon watching the same containers got there first (no
                    # io.containerfs.mountpoint annotation to tell them apart).
                    log.info("not injecting %s: it has the views of %s", name, ", ".join(others))
                return True  # every view it can take is there, looked at after it was bound
        if attempts.tries >= MAX_ATTEMPTS:
            log.info("giving up on %s after %d attempts: %s", name, attempts.tries, attempts.why or "no views")
            return True
        attempts.tries += 1
        attempts.next_try = time.monotonic() + min(BURST_INTERVAL_SECONDS * 2**attempts.tries, RETRY_CAP_SECONDS)
        if not steps:
            return False
        try:
            outcomes = carry_out(source, container.init_pid, steps, self.proc_root, NAMESPACE_TIMEOUT_SECONDS)
        except OSError as err:
            attempts.why = str(err)
            # Said once; the retries' outcome comes with the line that gives up.
            level = logging.WARNING if attempts.tries == 1 else logging.DEBUG
            log.log(level, "injecting into %s failed (attempt %d of %d): %s", name, attempts.tries, MAX_ATTEMPTS, err)
            return False
        attempts.absent |= {o.step.view for o in outcomes if o.error == ABSENT}
        failures = [o.summary for o in outcomes if o.failed]
        attempts.why = "; ".join(failures) or "its views did not stay (its runtime was still setting up its root)"
        if failures:
            level = logging.WARNING if attempts.tries == 1 else logging.DEBUG
            log.log(level, "injecting into %s (attempt %d of %d): %s", name, attempts.tries, MAX_ATTEMPTS, attempts.why)
        attached = sum(o.done and o.step.action in (Action.ATTACH, Action.REPLACE) for o in outcomes)
        if attached:
            log.info("injected %d views into %s", attached, name)
        return False

    def detach_all(self) -> None:
        """After a clean stop: take this daemon's views out of every container, and note where from.

        A view of a stopped daemon fails every read with ENOTCONN; the container's own
        file underneath serves host figures until the daemon is back and re-injects.
        Only views on our own device go: a newer daemon on the same mountpoint has the
        same mount source, and its views are not ours to take.
        """
        if self._own_dev is None:
            return  # never served: no view of ours anywhere
        source = dead_source(self.mountpoint)
        taken: list[Taken] = []
        for pid in mount_namespaces(self.proc_root).values():
            try:
                steps = plan_detach(mounts_of(pid, self.proc_root), source.source, self._own_dev, self._views)
                if not steps:
                    continue
                init = self._container_init(pid)
                identity = self._identity(init)
            except (OSError, ValueError):
                continue
            if any(o.done for o in self._apply(source, pid, steps, "detaching")):
                taken.append(Taken(init, *identity, sorted({step.view for step in steps})))
        if taken:
            os.makedirs(os.path.dirname(self.record), mode=0o700, exist_ok=True)
            with open(self.record, "w") as f:
                json.dump([t._asdict() for t in taken], f)
            log.info("took the views out of %d containers until the daemon is back", len(taken))

    def _container_init(self, pid: int) -> int:
        """The init of pid's pid namespace when it shares pid's mount namespace, else pid.

        A record names a container by its init: a passing `exec` (the lowest pid in the
        namespace at the time) is gone by the time the next daemon starts.
        """
        init = self._resolver.init_of(pid, self._resolver.ns(pid, "pid"))
        return init if self._resolver.ns(init, "mnt") == self._resolver.ns(pid, "mnt") else pid

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
