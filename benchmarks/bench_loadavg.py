#!/usr/bin/env python3
"""CPU cost of the loadavg sampler with many tracked containers: containerfs vs lxcfs.

For each daemon in turn: start it, measure its idle CPU, start N "containers" (cgroup
v1 groups /cfsbench-load-<i> in cpu, cpuacct and memory, each holding one sleeping
process that is pid 1 of its own pid + mount namespaces and that has read
MOUNT/proc/loadavg once, which makes the daemon track that container), then measure
the daemon's CPU time over a quiet period with no reads.  Prints numbers; not a test.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
from _harness import (
    Cgroup,
    DaemonError,
    Terminated,
    container_argv,
    install_signal_handlers,
    kill_procs,
    log,
    make_daemon,
    make_workdir,
    remove_workdir,
    run_cleanups,
    spawn,
)

CONTROLLERS = ("cpu", "cpuacct", "memory")
GOAL_CPU_PCT = 1.0  # the sampler's cost with 500 containers, in % of one core (issue 13)
SAMPLE_INTERVAL = 5.0  # seconds between sampling passes (lxcfs and containerfs)
LOADAVG_RE = re.compile(r"^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n?$")
# The container's init: read loadavg once through the mount (records the output and
# cat's status), then sleep as pid 1 until killed.
CONTAINER_SCRIPT = 'cat "$1" > "$2.out" 2> "$2.err"; echo $? > "$2.tmp"; mv "$2.tmp" "$2.rc"; exec sleep infinity'


@dataclass
class Measurement:
    daemon: str
    containers: int
    idle_cpu_pct: float | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    clock_cpu_s: float | None = None
    rss_mib: float = 0.0
    threads: int = 0
    setup_s: float = 0.0
    sample: str = ""

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def ms_per_pass(self) -> float:
        return 1000.0 * self.cpu_s / (self.wall_s / SAMPLE_INTERVAL) if self.wall_s else 0.0

    @property
    def clock_ms_per_pass(self) -> float | None:
        if self.clock_cpu_s is None or not self.wall_s:
            return None
        return 1000.0 * self.clock_cpu_s / (self.wall_s / SAMPLE_INTERVAL)


def process_cpu_clock(pid: int) -> float | None:
    """The kernel's nanosecond CPU clock of process ``pid`` (all threads), in seconds.

    clock_gettime() on the clock id clock_getcpuclockid(pid) would return
    (~pid << 3) | CPUCLOCK_SCHED (2).  Reaped children are not included.
    """
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9
    except OSError:
        return None


def cpu_snapshot(pid: int) -> dict[int, float]:
    """CPU seconds (user+system) of the daemon and each live descendant, by pid.

    The daemon's entry includes the CPU of children it has already reaped.
    """
    root = psutil.Process(pid)
    t = root.cpu_times()
    snap = {pid: t.user + t.system + t.children_user + t.children_system}
    for child in root.children(recursive=True):
        try:
            ct = child.cpu_times()
            snap[child.pid] = ct.user + ct.system
        except psutil.NoSuchProcess:
            pass
    return snap


def measure_cpu(pid: int, seconds: float) -> tuple[float, float, float | None]:
    """CPU seconds used by the daemon tree (psutil), wall seconds, and CPU seconds of
    the daemon process by its nanosecond CPU clock, over ``seconds``."""
    before = cpu_snapshot(pid)
    clock0 = process_cpu_clock(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    after = cpu_snapshot(pid)
    clock1 = process_cpu_clock(pid)
    wall = time.monotonic() - t0
    cpu = sum(v - before.get(p, 0.0) for p, v in after.items())
    clock = clock1 - clock0 if clock0 is not None and clock1 is not None else None
    return cpu, wall, clock


def start_containers(
    cgroups: Sequence[Cgroup], loadavg: Path, outdir: Path, timeout: float
) -> tuple[list[subprocess.Popen[bytes]], str, float]:
    """Start one container per cgroup; wait until each has read loadavg once.

    Returns the unshare processes, a sample of what the containers read, and the
    seconds it took.  Raises if a read failed or returned something implausible.
    """
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir()
    t0 = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, cg in enumerate(cgroups):
            argv = ["sh", "-c", CONTAINER_SCRIPT, "cfsbench-ct", str(loadavg), str(outdir / str(i))]
            procs.append(
                spawn(
                    container_argv(cg, argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        pending = set(range(len(cgroups)))
        deadline = time.monotonic() + timeout
        while pending:
            pending = {i for i in pending if not (outdir / f"{i}.rc").exists()}
            dead = [i for i in pending if procs[i].poll() is not None]
            if dead:
                raise RuntimeError(
                    f"container {dead[0]} exited with status {procs[dead[0]].returncode} before reading loadavg"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} containers did not read loadavg within {timeout:.0f}s")
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        bad: list[str] = []
        sample = ""
        for i in range(len(cgroups)):
            rc = (outdir / f"{i}.rc").read_text().strip()
            out = (outdir / f"{i}.out").read_text(errors="replace")
            if rc != "0" or not LOADAVG_RE.match(out):
                err = (outdir / f"{i}.err").read_text(errors="replace").strip()
                bad.append(f"container {i}: cat status {rc}, output {out!r} {err}")
            elif not sample:
                sample = out.strip()
        if bad:
            raise RuntimeError(f"{len(bad)} of {len(cgroups)} containers read a bad loadavg, e.g. {bad[0]}")
        return procs, sample, elapsed
    except BaseException:
        kill_procs(procs)
        raise


def stop_containers(procs: list[subprocess.Popen[bytes]], cgroups: Sequence[Cgroup]) -> None:
    kill_procs(procs)
    procs.clear()
    for cg in cgroups:
        cg.kill_all()


def bench_daemon(
    name: str,
    workdir: Path,
    cgroups: Sequence[Cgroup],
    args: argparse.Namespace,
    containers: list[subprocess.Popen[bytes]],
) -> Measurement:
    daemon = make_daemon(name, workdir, args.containerfs_arg)
    daemon.ready_file = "proc/loadavg"
    m = Measurement(name, len(cgroups))
    try:
        daemon.start()
        if args.baseline_seconds > 0:
            log(f"{name}: idle CPU over {args.baseline_seconds:g}s (no container tracked)")
            cpu, wall, clock = measure_cpu(daemon.pid, args.baseline_seconds)
            m.idle_cpu_pct = 100.0 * (clock if clock is not None else cpu) / wall
        log(f"{name}: starting {len(cgroups)} containers, each reads proc/loadavg once")
        procs, m.sample, m.setup_s = start_containers(
            cgroups, daemon.mountpoint / "proc" / "loadavg", workdir / "out", timeout=60 + 0.5 * len(cgroups)
        )
        containers.extend(procs)
        log(
            f"{name}: {len(cgroups)} containers up in {m.setup_s:.1f}s; sample read: "
            f"{m.sample!r}; settling {args.settle:g}s"
        )
        time.sleep(args.settle)
        log(f"{name}: measuring CPU over {args.seconds:g}s with no reads")
        m.cpu_s, m.wall_s, m.clock_cpu_s = measure_cpu(daemon.pid, args.seconds)
        proc = psutil.Process(daemon.pid)
        m.rss_mib = proc.memory_info().rss / 2**20
        m.threads = proc.num_threads()
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise DaemonError(f"{name} died during the measurement; log:\n{daemon.log_tail()}")
        log(
            f"{name}: {m.cpu_pct:.2f}% of one core, {m.ms_per_pass:.1f} ms per 5s pass "
            f"(ns clock: {m.clock_ms_per_pass or 0:.1f} ms)"
        )
        return m
    finally:
        run_cleanups([("stop containers", lambda: stop_containers(containers, cgroups)), (f"stop {name}", daemon.stop)])
        install_signal_handlers()  # run_cleanups ignored them; the next daemon follows


def print_results(ms: list[Measurement], notes: list[str]) -> None:
    print()
    print(f"{'':<33}{'psutil cpu_times (10 ms ticks)':<31}| {'kernel ns CPU clock':<23}|")
    print(
        f"{'daemon':<12} {'containers':>10} {'idle CPU%':>9} {'CPU%':>6} {'ms/5s pass':>10} "
        f"{'ms/pass/ctr':>11} | {'ms/5s pass':>10} {'ms/pass/ctr':>11} | {'RSS MiB':>7} "
        f"{'threads':>7} {'setup s':>7}"
    )
    for m in ms:
        idle = f"{m.idle_cpu_pct:.2f}" if m.idle_cpu_pct is not None else "-"
        per = m.ms_per_pass / m.containers if m.containers else 0.0
        cms = m.clock_ms_per_pass
        cms_s = f"{cms:.1f}" if cms is not None else "-"
        cper_s = f"{cms / m.containers:.3f}" if cms is not None and m.containers else "-"
        print(
            f"{m.daemon:<12} {m.containers:>10} {idle:>9} {m.cpu_pct:>6.2f} "
            f"{m.ms_per_pass:>10.1f} {per:>11.3f} | {cms_s:>10} {cper_s:>11} | "
            f"{m.rss_mib:>7.1f} {m.threads:>7} {m.setup_s:>7.1f}"
        )
    by = {m.daemon: m for m in ms}
    if "containerfs" in by and "lxcfs" in by and by["lxcfs"].cpu_pct > 0:
        cfs, lx = by["containerfs"], by["lxcfs"]
        ratio = cfs.cpu_pct / lx.cpu_pct
        line = f"\nratio containerfs/lxcfs (CPU over the quiet period): {ratio:.2f} (psutil)"
        if cfs.clock_ms_per_pass and lx.clock_ms_per_pass:
            line += f", {cfs.clock_ms_per_pass / lx.clock_ms_per_pass:.2f} (ns clock)"
        print(line + "; <1 = containerfs cheaper")
    for m in ms:
        pct = 100.0 * m.clock_cpu_s / m.wall_s if m.clock_cpu_s is not None and m.wall_s else m.cpu_pct
        verdict = "met" if pct < GOAL_CPU_PCT else "NOT met"
        print(
            f"{m.daemon}: {pct:.2f}% of one core with {m.containers} tracked containers "
            f"(goal for containerfs: under {GOAL_CPU_PCT:g}%: {verdict})"
        )
    for m in ms:
        print(f"{m.daemon} sample loadavg read in a container: {m.sample!r}")
    for note in notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", type=int, default=500, help="containers (default 500)")
    ap.add_argument("--seconds", type=float, default=30.0, help="quiet measurement period in seconds (default 30)")
    ap.add_argument(
        "--baseline-seconds",
        type=float,
        default=10.0,
        help="idle measurement before any container is tracked (0 = skip)",
    )
    ap.add_argument(
        "--settle", type=float, default=6.0, help="seconds between the last container read and the measurement"
    )
    ap.add_argument("--fs", default="containerfs,lxcfs", help="daemons, in order")
    ap.add_argument(
        "--containerfs-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `containerfs mount` (repeatable)",
    )
    args = ap.parse_args(argv)
    fs_list = [f for f in args.fs.split(",") if f]
    for fs in fs_list:
        if fs not in ("containerfs", "lxcfs"):
            ap.error(f"unknown daemon {fs!r}")
    if os.geteuid() != 0:
        ap.error("must run as root (creates cgroups, mounts FUSE)")
    install_signal_handlers()

    notes: list[str] = []
    if "lxcfs" in fs_list and shutil.which("lxcfs") is None:
        notes.append("lxcfs not installed: skipped")
        fs_list.remove("lxcfs")

    print(
        f"# bench_loadavg: {time.strftime('%Y-%m-%d %H:%M:%S')}, kernel "
        f"{platform.release()}, {os.cpu_count()} cpus, loadavg at start "
        f"{os.getloadavg()[0]:.2f}, {args.containers} containers, {args.seconds:g}s quiet "
        f"period",
        flush=True,
    )

    cgroups: list[Cgroup] = []
    containers: list[subprocess.Popen[bytes]] = []
    workdirs: list[Path] = []
    results: list[Measurement] = []
    status = 0
    try:
        for i in range(args.containers):
            cg = Cgroup(f"cfsbench-load-{i}", CONTROLLERS)
            cgroups.append(cg)
            cg.create()
        log(f"created {len(cgroups)} cgroups /cfsbench-load-<i> in {', '.join(CONTROLLERS)}")
        for fs in fs_list:
            workdir = make_workdir(f"load-{fs}")
            workdirs.append(workdir)
            try:
                results.append(bench_daemon(fs, workdir, cgroups, args, containers))
            except RuntimeError as exc:  # DaemonError, or containers failed to read
                log(f"ERROR: {exc}")
                notes.append(f"{fs}: {str(exc).splitlines()[0]}")
                status = 1
    except (KeyboardInterrupt, Terminated) as exc:
        log(f"interrupted ({type(exc).__name__}); cleaning up")
        status = 130
    except Exception:
        log(traceback.format_exc())
        notes.append("benchmark aborted by an error (traceback on stderr)")
        status = 1
    finally:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("stop containers", functools.partial(stop_containers, containers, cgroups))
        ]
        steps += [(f"remove /{cg.name}", cg.remove) for cg in cgroups]
        steps += [(f"remove {p}", functools.partial(remove_workdir, p)) for p in workdirs]
        run_cleanups(steps)
    if results or notes:
        print_results(results, notes)
    return status


if __name__ == "__main__":
    sys.exit(main())
