"""Per-container load averages: count R and D tasks every 5 s and decay like the kernel."""

from __future__ import annotations

import logging
import threading
import time

from containerfs.cgroup.layout import Hierarchies
from containerfs.cgroup.reader import CgroupGone, CgroupReader, NotMounted
from containerfs.daemon.counters import Stats
from containerfs.daemon.ratelimit import RateLimitedLog
from containerfs.daemon.tracking import ContainerState, StateRegistry, TaskCounts, identity
from containerfs.host.errors import ParseError, ProcessGone
from containerfs.host.proc import ProcFS
from containerfs.procfs.loadavg import EXP, FIXED_1, SAMPLE_SECONDS, decay

log = logging.getLogger(__name__)


class LoadSampler:
    def __init__(
        self, proc_root: str, cgroups: CgroupReader, registry: StateRegistry, stats: Stats, hierarchies: Hierarchies
    ) -> None:
        self.procfs = ProcFS(proc_root)
        self.cgroups = cgroups
        self.hierarchies = hierarchies  # where the containers' directories are, for their identity
        self.registry = registry
        self.stats = stats
        # What sampling costs, for `containerfs status`: passes, CPU time, the last pass's duration.
        self.passes = 0
        self.cpu_ns = 0
        self.last_pass_ns: int | None = None
        self._absent = RateLimitedLog(log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, state: ContainerState) -> TaskCounts:
        running = blocked = total = last_pid = 0
        for tid in self.cgroups.thread_ids(state.cgroups):
            try:
                task_state = self.procfs.process(tid).stat().state
            except ProcessGone:
                continue  # exited between the listing and the read
            total += 1
            last_pid = max(last_pid, tid)
            if task_state == "R":
                running += 1
            elif task_state == "D":
                blocked += 1
        return TaskCounts(running, blocked, total, last_pid)

    def refresh(self, state: ContainerState) -> None:
        """Take a sample without advancing the averages (a container's first read)."""
        state.tasks = self.count(state)

    def sample_all(self) -> None:
        for state in self.registry.all():
            try:
                # A directory removed, or recreated at the same path: another container.
                try:
                    current = identity(self.hierarchies, state.cgroups)
                except FileNotFoundError:
                    current = None
                if current != state.key:
                    raise CgroupGone(f"cgroup {state.cgroups} was removed")
                tasks = self.count(state)
            except CgroupGone:
                # Only a removed (or recreated) cgroup ends a container's tracking.
                self.registry.remove(state.key)
                self.cgroups.forget(state.cgroups)
                continue
            except NotMounted as err:
                # A hierarchy that is absent now may be mounted later: keep the container
                # and its averages, and sample it again next pass.
                self._absent.warning("not mounted", "load sampling of %s skipped: %s", state.key, err)
                continue
            except (OSError, ParseError) as err:
                self.stats.error()
                log.warning("load sampling of %s failed: %s", state.key, err)
                continue
            active = (tasks.running + tasks.blocked) * FIXED_1
            with state.lock:
                state.tasks = tasks
                one, five, fifteen = (decay(load, exp, active) for load, exp in zip(state.averages, EXP))
                state.averages = (one, five, fifteen)

    def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline += SAMPLE_SECONDS
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                return
            self.sample_pass()

    def sample_pass(self) -> None:
        """One pass of the thread: sample every container, account for its cost, survive any failure."""
        started, cpu = time.monotonic_ns(), time.thread_time_ns()
        try:
            self.sample_all()
        except Exception:  # the sampler must outlive any one bad pass
            self.stats.error()
            log.exception("load sampling pass failed")
        self.passes += 1
        self.cpu_ns += time.thread_time_ns() - cpu
        self.last_pass_ns = time.monotonic_ns() - started

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loadavg-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
