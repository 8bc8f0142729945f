#!/usr/bin/env python3
"""containerfs against lxcfs, read by processes in a runc container: CPU, reads/s, latency.

Both daemons serve side by side; one runc container (256 MiB, cpuset 0-1, CFS quota 1.5
CPUs) sees both mounts.  For every view and reader count, readers started with
`runc exec` loop open / read until EOF / close (or sendfile to /dev/null) for a fixed
time; the daemons alternate, and each figure is the median over the repeats.  Printed
per view: the daemon's CPU per read (utime+stime from /proc/PID/stat), reads/s and
p50/p99 latency of one open-read-close, each next to lxcfs's with their ratio and the
goal it is held to.  Prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from _harness import (
    BENCH_DIR,
    DaemonError,
    FuseDaemon,
    RuncContainer,
    Terminated,
    install_signal_handlers,
    kill_procs,
    log,
    make_daemon,
    make_workdir,
    process_cpu_seconds,
    remove_workdir,
    run_cleanups,
    spawn,
)

MEM_LIMIT = 256 * 1024 * 1024
CPUSET = "0-1"
CFS_QUOTA = 150000
CFS_PERIOD = 100000
EXPECTED_CPUS = 2  # min(cpuset size, ceil(quota / period))
FILESYSTEMS = ("containerfs", "lxcfs")
CONTAINER_PYTHON = "/usr/bin/python3"
CONTAINER_BENCH = "/bench"
# Goals of issue 13: CPU per read at most this times lxcfs's; reads/s at least this times
# lxcfs's (per reader count); p99 latency no higher than lxcfs's.
CPU_GOAL = 0.5
RATE_GOAL = {1: 1.0, 4: 1.5}


def view_dir(fs: str) -> str:
    return f"/views/{fs}"


class Cell(NamedTuple):
    path: str  # below the mountpoint
    mode: str  # "read" or "sendfile"
    readers: int


class Run(NamedTuple):
    rate: float  # reads/s, summed over the readers
    cpu_us: float  # daemon CPU per read
    p50_us: float
    p99_us: float


def percentile(histogram: dict[int, int], fraction: float) -> float:
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank = fraction * total
    seen = 0
    for us in sorted(histogram):
        seen += histogram[us]
        if seen >= rank:
            return float(us)
    return float(max(histogram))


def served_files(mountpoint: Path) -> list[str]:
    """Every file a daemon serves, relative to its mountpoint."""
    found = []
    for dirpath, _dirs, names in os.walk(mountpoint):
        found += [os.path.relpath(os.path.join(dirpath, n), mountpoint) for n in names]
    return sorted(found)


def check_content(path: str, content: str) -> list[str]:
    """Problems with one file's content as read inside the container ([] = plausible)."""
    if not content.strip():
        # A container that did no block I/O has no disk lines.
        return [] if path == "proc/diskstats" else ["empty content"]
    problems: list[str] = []
    lines = content.splitlines()
    if path == "proc/meminfo":
        fields = {ln.split(":")[0]: int(ln.split()[1]) for ln in lines if len(ln.split()) > 1}
        want = MEM_LIMIT // 1024
        if fields.get("MemTotal") != want:
            problems.append(f"MemTotal {fields.get('MemTotal')} kB, expected {want} kB")
        if not 0 <= fields.get("MemFree", -1) <= want:
            problems.append(f"MemFree {fields.get('MemFree')} kB not within MemTotal")
    elif path == "proc/stat":
        cpus = [ln.split()[0] for ln in lines if ln[:3] == "cpu" and ln[3:4].isdigit()]
        if not lines[0].startswith("cpu ") or len(cpus) != EXPECTED_CPUS:
            problems.append(f"cpu lines {cpus}, expected {EXPECTED_CPUS} after the 'cpu' line")
    elif path == "proc/cpuinfo":
        count = sum(ln.startswith("processor") for ln in lines)
        if count != EXPECTED_CPUS:
            problems.append(f"{count} processor blocks, expected {EXPECTED_CPUS}")
    elif path == "sys/devices/system/cpu/online" and content.strip() != f"0-{EXPECTED_CPUS - 1}":
        problems.append(f"{content.strip()!r}, expected '0-{EXPECTED_CPUS - 1}'")
    return problems


def container_json(container: RuncContainer, argv: Sequence[str], timeout: float) -> dict[str, object]:
    """Run a reader in the container and parse the JSON line it prints."""
    proc = spawn(container.exec_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_procs([proc])
    lines = out.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"status {proc.returncode}: {err.decode(errors='replace').strip()[-1000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def reader_argv(*args: str) -> list[str]:
    return [CONTAINER_PYTHON, f"{CONTAINER_BENCH}/_reader.py", *args]


def verify(container: RuncContainer, fs: str, files: Sequence[str]) -> dict[str, str]:
    """Read each file once in the container; {file: problem} for the implausible ones."""
    bad: dict[str, str] = {}
    for path in files:
        try:
            res = container_json(container, reader_argv("cat", f"{view_dir(fs)}/{path}"), 60)
            problems = check_content(path, str(res.get("content", "")))
        except Exception as exc:
            problems = [f"read failed: {exc}"]
        if problems:
            bad[path] = "; ".join(problems)
            log(f"  VERIFY {fs} {path}: {bad[path]}")
    return bad


def run_readers(container: RuncContainer, daemon: FuseDaemon, fs: str, cell: Cell, duration: float) -> tuple[Run, str]:
    """Run cell.readers readers together; their summed reads/s, daemon CPU per read, latency."""
    start = time.monotonic() + 1.0 + 0.4 * cell.readers  # every reader is up and waiting by then
    argv = reader_argv("loop", f"{view_dir(fs)}/{cell.path}", f"{start:.6f}", f"{duration:.3f}", cell.mode)
    procs = [
        spawn(container.exec_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(cell.readers)
    ]
    notes: list[str] = []
    rate = 0.0
    count = 0
    histogram: dict[int, int] = {}
    try:
        time.sleep(max(0.0, start - time.monotonic()))
        cpu0 = process_cpu_seconds(daemon.pid)
        for p in procs:
            out, err = p.communicate(timeout=duration + 60)
            lines = out.decode(errors="replace").strip().splitlines()
            if p.returncode != 0 or not lines:
                raise RuntimeError(f"reader failed ({p.returncode}): {err.decode(errors='replace').strip()[-1000:]}")
            res = json.loads(lines[-1])
            if res["errors"]:
                notes.append(f"{res['errors']} errors, first {res['first_error']}")
            if res["count"] and not res["bytes"]:
                notes.append("every read was empty")
            if res["late"] > 0.2:
                notes.append(f"a reader started {res['late']:.2f}s late")
            if res["elapsed"] > 0:
                rate += res["count"] / res["elapsed"]
            count += res["count"]
            for us, n in res["latency_us"]:
                histogram[us] = histogram.get(us, 0) + n
        cpu1 = process_cpu_seconds(daemon.pid)
    finally:
        kill_procs(procs)
    cpu_us = 1e6 * (cpu1 - cpu0) / count if count else float("nan")
    run = Run(rate, cpu_us, percentile(histogram, 0.5), percentile(histogram, 0.99))
    return run, "; ".join(notes)


def median(runs: Sequence[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs) if runs else float("nan")


def fmt(value: float, spec: str = ".0f") -> str:
    return "-" if value != value else format(value, spec)  # NaN: no measurement


def print_tables(
    results: dict[tuple[Cell, str], list[Run]], cells: Sequence[Cell], bad: dict[str, dict[str, str]], notes: list[str]
) -> None:
    print()
    print(
        f"{'view':<31} {'mode':<8} {'rd':>2} | {'CPU us/read cfs':>15} {'lxcfs':>6} {'ratio':>5} "
        f"| {'reads/s cfs':>11} {'lxcfs':>6} {'ratio':>5} | {'p50 us cfs/lxcfs':>16} | {'p99 us cfs/lxcfs':>16} | goals"
    )
    met = total = 0
    for cell in cells:
        a, b = results.get((cell, "containerfs"), []), results.get((cell, "lxcfs"), [])
        cpu_a, cpu_b = median(a, "cpu_us"), median(b, "cpu_us")
        rate_a, rate_b = median(a, "rate"), median(b, "rate")
        p50 = f"{fmt(median(a, 'p50_us'))}/{fmt(median(b, 'p50_us'))}"
        p99_a, p99_b = median(a, "p99_us"), median(b, "p99_us")
        cpu_ratio = cpu_a / cpu_b if b else float("nan")
        rate_ratio = rate_a / rate_b if b else float("nan")
        goals = []
        if a and b:
            rate_goal = RATE_GOAL.get(cell.readers, RATE_GOAL[max(RATE_GOAL)])
            checks = (("cpu", cpu_ratio <= CPU_GOAL), ("rate", rate_ratio >= rate_goal), ("p99", p99_a <= p99_b))
            goals = [name + ("+" if ok else "-") for name, ok in checks]
            met += sum(ok for _, ok in checks)
            total += len(checks)
        flags = "".join("*" if cell.path in bad.get(fs, {}) else "" for fs in FILESYSTEMS)
        print(
            f"{cell.path + flags:<31} {cell.mode:<8} {cell.readers:>2} | {fmt(cpu_a):>15} {fmt(cpu_b):>6} "
            f"{fmt(cpu_ratio, '.2f'):>5} | {fmt(rate_a):>11} {fmt(rate_b):>6} {fmt(rate_ratio, '.2f'):>5} "
            f"| {p50:>16} | {fmt(p99_a) + '/' + fmt(p99_b):>16} | {' '.join(goals)}"
        )
    rates = ", ".join(f"{n} reader(s) >= {g}x" for n, g in RATE_GOAL.items())
    print(
        f"goals: CPU per read <= {CPU_GOAL}x lxcfs's; reads/s {rates} lxcfs's; p99 <= lxcfs's.  "
        f"Met: {met} of {total} (+ met, - missed)."
    )
    print()
    print("every run: reads/s [daemon CPU us/read, p50/p99 us], in run order")
    for (cell, fs), runs in results.items():
        print(
            f"  {cell.path:<31} {cell.mode:<8} {cell.readers} {fs:<11} "
            + ", ".join(f"{r.rate:,.0f} [{r.cpu_us:.0f}, {r.p50_us:.0f}/{r.p99_us:.0f}]" for r in runs)
        )
    for fs, files in bad.items():
        for path, why in files.items():
            print(f"* {fs} {path} failed verification inside the container: {why}")
    for note in notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per run (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (median)")
    ap.add_argument("--readers", default="1,4", help="comma-separated reader counts (1,4)")
    ap.add_argument("--files", default="", help="paths below the mount (default: every file containerfs serves)")
    ap.add_argument("--sendfile", default="proc/meminfo", help="paths also read with sendfile (proc/meminfo)")
    ap.add_argument("--fs", default="containerfs,lxcfs", help="filesystems to compare (containerfs,lxcfs)")
    ap.add_argument(
        "--containerfs-arg", action="append", default=[], metavar="ARG", help="extra argument for `containerfs mount`"
    )
    ap.add_argument(
        "--floor", action="store_true", help="containerfs = floor_daemon.py: the binding serving host files, no views"
    )
    args = ap.parse_args(argv)

    reader_counts = [int(x) for x in args.readers.split(",") if x]
    fs_list = [f for f in args.fs.split(",") if f]
    for fs in fs_list:
        if fs not in FILESYSTEMS:
            ap.error(f"unknown filesystem {fs!r}")
    if os.geteuid() != 0:
        ap.error("must run as root (creates cgroups and containers, mounts FUSE)")
    install_signal_handlers()

    notes: list[str] = []
    print(
        f"# bench_reads: {time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {platform.release()}, "
        f"{os.cpu_count()} cpus, loadavg at start {os.getloadavg()[0]:.2f}, runc container "
        f"{MEM_LIMIT >> 20} MiB, cpuset {CPUSET}, quota {CFS_QUOTA / CFS_PERIOD:g}; "
        f"{args.duration:g}s x {args.repeats} runs per cell, median shown"
        + (" -- FLOOR: containerfs = the binding serving host files" if args.floor else ""),
        flush=True,
    )

    workdirs: dict[str, Path] = {}
    daemons: dict[str, FuseDaemon] = {}
    container: RuncContainer | None = None
    results: dict[tuple[Cell, str], list[Run]] = {}
    cells: list[Cell] = []
    bad: dict[str, dict[str, str]] = {}
    status = 0
    try:
        for fs in list(fs_list):
            workdirs[fs] = make_workdir(fs)
            daemons[fs] = make_daemon(fs, workdirs[fs], args.containerfs_arg, args.floor)
            try:
                daemons[fs].start()
            except DaemonError as exc:
                log(f"ERROR: {exc}")
                notes.append(f"{fs} did not start: {str(exc).splitlines()[0]}")
                fs_list.remove(fs)
                status = 1
        if not fs_list:
            raise RuntimeError("no daemon started")
        files = [f for f in args.files.split(",") if f] or served_files(daemons[fs_list[0]].mountpoint)
        sendfile = [f for f in args.sendfile.split(",") if f]
        cells = [Cell(path, "read", n) for path in files for n in reader_counts]
        cells += [Cell(path, "sendfile", n) for path in sendfile for n in reader_counts]
        binds = {str(daemons[fs].mountpoint): view_dir(fs) for fs in fs_list}
        binds[str(BENCH_DIR)] = CONTAINER_BENCH
        workdir = make_workdir("runc")
        workdirs["runc"] = workdir
        container = RuncContainer(f"cfsbench-{os.getpid()}", workdir, binds, MEM_LIMIT, CPUSET, CFS_QUOTA, CFS_PERIOD)
        container.create()
        for fs in fs_list:
            served = set(served_files(daemons[fs].mountpoint))
            bad[fs] = verify(container, fs, [f for f in files if f in served])
        for rep in range(args.repeats):
            for ci, cell in enumerate(cells):
                order = fs_list if (rep + ci) % 2 == 0 else list(reversed(fs_list))
                for fs in order:
                    if not (daemons[fs].mountpoint / cell.path).exists():
                        continue  # a view lxcfs does not have
                    run, note = run_readers(container, daemons[fs], fs, cell, args.duration)
                    results.setdefault((cell, fs), []).append(run)
                    log(
                        f"run {rep + 1}/{args.repeats} {cell.path} {cell.mode} x{cell.readers} {fs}: "
                        f"{run.rate:,.0f} reads/s, {run.cpu_us:.0f} us CPU/read, p50 {run.p50_us:.0f} "
                        f"p99 {run.p99_us:.0f} us" + (f"  [{note}]" if note else "")
                    )
                    if note:
                        notes.append(f"run {rep + 1} {cell.path} {cell.mode} x{cell.readers} {fs}: {note}")
        for fs in fs_list:
            proc = daemons[fs].proc
            if proc is not None and proc.poll() is not None:
                notes.append(f"{fs} daemon died during the benchmark; log:\n" + daemons[fs].log_tail())
                status = 1
    except (KeyboardInterrupt, Terminated) as exc:
        log(f"interrupted ({type(exc).__name__}); cleaning up")
        status = 130
    except Exception:
        log(traceback.format_exc())
        notes.append("benchmark aborted by an error (traceback on stderr)")
        status = 1
    finally:
        steps = [("remove container", container.remove)] if container is not None else []
        steps += [(f"stop {fs}", d.stop) for fs, d in daemons.items()]
        steps += [(f"remove {p}", functools.partial(remove_workdir, p)) for p in workdirs.values()]
        run_cleanups(steps)
    if results or notes:
        print_tables(results, cells, bad, notes)
    return status


if __name__ == "__main__":
    sys.exit(main())
