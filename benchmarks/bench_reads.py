#!/usr/bin/env python3
"""Read throughput of containerfs vs lxcfs, as seen from inside a container.

Mounts both filesystems side by side, creates a cgroup v1 "container" (memory limit
512 MiB, cpu quota 100000/100000, cpuset = all host cpus) and runs reader processes
that are in that cgroup and are pid 1 of their own pid + mount namespaces.  Each
reader loops open / read-until-EOF / close over one file for a fixed time and reports
its count.  Configurations are interleaved across filesystems and repeated; the table
shows the median reads/s.  Prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from _harness import (
    CGROUP_ROOT,
    HARNESS,
    Cgroup,
    DaemonError,
    FuseDaemon,
    Terminated,
    container_argv,
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

from containerfs.cgroup.files import parse_cpu_list

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio")
MEM_LIMIT = 512 * 1024 * 1024
CFS_QUOTA = 100000
CFS_PERIOD = 100000
FILESYSTEMS = ("containerfs", "lxcfs")


def setup_cgroup(name: str) -> tuple[Cgroup, int]:
    """Create and configure the benchmark cgroup; return it and the expected CPU count."""
    cg = Cgroup(name, CONTROLLERS)
    cg.create()
    cpus = (CGROUP_ROOT / "cpuset" / "cpuset.cpus").read_text().strip()
    mems = (CGROUP_ROOT / "cpuset" / "cpuset.mems").read_text().strip()
    cg.write("cpuset", "cpuset.cpus", cpus)  # cpuset needs cpus and mems before tasks
    cg.write("cpuset", "cpuset.mems", mems)
    cg.write("memory", "memory.limit_in_bytes", str(MEM_LIMIT))
    cg.write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD))
    cg.write("cpu", "cpu.cfs_quota_us", str(CFS_QUOTA))
    ncpus = min(len(parse_cpu_list(cpus)), math.ceil(CFS_QUOTA / CFS_PERIOD))
    log(
        f"cgroup /{cg.name}: memory {MEM_LIMIT >> 20} MiB, quota {CFS_QUOTA}/{CFS_PERIOD}, "
        f"cpuset {cpus} (mems {mems}) -> expect {ncpus} visible cpu(s)"
    )
    return cg, ncpus


def run_in_container(cg: Cgroup, argv: Sequence[str], timeout: float) -> dict[str, object]:
    """Run one command as a container init and parse the JSON line it prints."""
    proc = spawn(container_argv(cg, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_procs([proc])
    lines = out.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"container command failed (status {proc.returncode}): {err.decode(errors='replace').strip()[-2000:]}"
        )
    result: dict[str, object] = json.loads(lines[-1])
    return result


def check_content(name: str, content: str, ncpus: int) -> list[str]:
    """Problems with one file's content as read inside the container ([] = plausible)."""
    problems: list[str] = []
    if not content.strip():
        return ["empty content"]
    if name == "meminfo":
        fields: dict[str, int] = {}
        for line in content.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[key.strip()] = int(parts[0])
        want = MEM_LIMIT // 1024
        if fields.get("MemTotal") != want:
            problems.append(f"MemTotal {fields.get('MemTotal')} kB, expected {want} kB")
        free = fields.get("MemFree")
        if free is None or free > want:
            problems.append(f"MemFree {free} kB not within MemTotal")
    elif name == "stat":
        lines = content.splitlines()
        if not lines[0].startswith("cpu "):
            problems.append(f"first line is {lines[0][:40]!r}, expected 'cpu ...'")
        cpu_lines = [ln.split()[0] for ln in lines if ln[:3] == "cpu" and ln[3:4].isdigit()]
        if len(cpu_lines) != ncpus:
            problems.append(f"{len(cpu_lines)} per-cpu lines {cpu_lines}, expected {ncpus}")
        if not any(ln.startswith("ctxt ") for ln in lines):
            problems.append("no ctxt line")
    return problems


def verify(cg: Cgroup, daemon: FuseDaemon, files: Sequence[str], ncpus: int) -> dict[str, str]:
    """Read each file once inside the container; return {file: problem text} (empty = OK)."""
    bad: dict[str, str] = {}
    for name in files:
        path = str(daemon.mountpoint / "proc" / name)
        try:
            res = run_in_container(cg, [sys.executable, str(HARNESS), "cat", path], 30)
        except Exception as exc:
            bad[name] = f"read failed: {exc}"
            log(f"  VERIFY {daemon.name} /proc/{name}: {bad[name]}")
            continue
        problems = []
        if res.get("pid_in_ns") != 1:
            problems.append(f"reader is pid {res.get('pid_in_ns')} in its namespace, not 1")
        problems += check_content(name, str(res.get("content", "")), ncpus)
        first = str(res.get("content", "")).splitlines()[:1]
        if problems:
            bad[name] = "; ".join(problems)
            log(f"  VERIFY {daemon.name} /proc/{name}: PROBLEM: {bad[name]}")
        else:
            log(f"  verify {daemon.name} /proc/{name}: ok ({first[0] if first else ''})")
    return bad


def run_readers(cg: Cgroup, daemon_pid: int, path: str, readers: int, duration: float) -> tuple[float, float, str]:
    """Start ``readers`` container readers together.

    Returns the summed reads/s, the daemon's CPU microseconds per read, and a note.
    """
    start = time.monotonic() + 1.5  # every reader is up and waiting by then
    argv = [sys.executable, str(HARNESS), "loop", path, f"{start:.6f}", f"{duration:.3f}"]
    procs = [spawn(container_argv(cg, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(readers)]
    notes: list[str] = []
    total = 0.0
    count = 0
    try:
        time.sleep(max(0.0, start - time.monotonic()))
        cpu0 = process_cpu_seconds(daemon_pid)
        for p in procs:
            out, err = p.communicate(timeout=duration + 60)
            lines = out.decode(errors="replace").strip().splitlines()
            if p.returncode != 0 or not lines:
                raise RuntimeError(
                    f"reader failed (status {p.returncode}): {err.decode(errors='replace').strip()[-1000:]}"
                )
            res = json.loads(lines[-1])
            if res["errors"]:
                notes.append(f"{res['errors']} errors, first {res['first_error']}")
            if res["late"] > 0.2:
                notes.append(f"a reader started {res['late']:.2f}s late")
            if res["elapsed"] > 0:
                total += res["count"] / res["elapsed"]
            count += res["count"]
        cpu1 = process_cpu_seconds(daemon_pid)
    finally:
        kill_procs(procs)
    us_per_read = 1e6 * (cpu1 - cpu0) / count if count else float("nan")
    return total, us_per_read, "; ".join(notes)


def fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}" if values else "-"


def print_table(
    results: dict[tuple[str, int, str], list[float]],
    cpu_per_read: dict[tuple[str, int, str], list[float]],
    files: Sequence[str],
    reader_counts: Sequence[int],
    fs_list: Sequence[str],
    bad: dict[str, dict[str, str]],
    notes: list[str],
) -> None:
    cols = ["containerfs", "lxcfs"]
    print()
    print(f"{'file':<15} {'readers':>7} {'containerfs reads/s':>20} {'lxcfs reads/s':>14} {'ratio':>6}")
    for name in files:
        for n in reader_counts:
            cells = []
            for fs in cols:
                vals = results.get((f"/proc/{name}", n, fs), [])
                flag = "*" if name in bad.get(fs, {}) else ""
                cells.append(fmt_rate(vals) + flag)
            a = results.get((f"/proc/{name}", n, "containerfs"), [])
            b = results.get((f"/proc/{name}", n, "lxcfs"), [])
            ratio = (
                f"{statistics.median(a) / statistics.median(b):.2f}" if a and b and statistics.median(b) > 0 else "-"
            )
            print(f"{'/proc/' + name:<15} {n:>7} {cells[0]:>20} {cells[1]:>14} {ratio:>6}")
    print(
        "(ratio = containerfs/lxcfs, >1 = containerfs faster; readers share the "
        "container's 1-CPU quota, daemons run on the host)"
    )
    print()
    print(
        "daemon CPU per read, microseconds (median; less sensitive to other load; "
        "ratio >1 = containerfs uses more CPU per read):"
    )
    print(f"{'file':<15} {'readers':>7} {'containerfs':>12} {'lxcfs':>8} {'ratio':>6}")
    for name in files:
        for n in reader_counts:
            a = cpu_per_read.get((f"/proc/{name}", n, "containerfs"), [])
            b = cpu_per_read.get((f"/proc/{name}", n, "lxcfs"), [])
            ma = statistics.median(a) if a else None
            mb = statistics.median(b) if b else None
            ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
            print(
                f"{'/proc/' + name:<15} {n:>7} "
                f"{'-' if ma is None else f'{ma:.0f}':>12} {'-' if mb is None else f'{mb:.0f}':>8} "
                f"{ratio:>6}"
            )
    print()
    print("per-run reads/s [daemon us CPU/read] (in run order):")
    for key, vals in results.items():
        path, n, fs = key
        us = cpu_per_read.get(key, [])
        print(f"  {path:<15} {n} reader(s) {fs:<12} " + ", ".join(f"{v:,.0f} [{u:.0f}]" for v, u in zip(vals, us)))
    for fs in fs_list:
        for name, why in bad.get(fs, {}).items():
            print(f"* {fs} /proc/{name} failed verification inside the container: {why}")
    for note in notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (median)")
    ap.add_argument("--readers", default="1,4", help="comma-separated reader counts (1,4)")
    ap.add_argument("--files", default="meminfo,stat", help="files under proc/ (meminfo,stat)")
    ap.add_argument("--fs", default="containerfs,lxcfs", help="filesystems to compare (containerfs,lxcfs)")
    ap.add_argument(
        "--containerfs-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `containerfs mount` (repeatable)",
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="run floor_daemon.py (the adapter serving host files, no views) as containerfs",
    )
    args = ap.parse_args(argv)

    files = [f for f in args.files.split(",") if f]
    reader_counts = [int(x) for x in args.readers.split(",") if x]
    fs_list = [f for f in args.fs.split(",") if f]
    for fs in fs_list:
        if fs not in FILESYSTEMS:
            ap.error(f"unknown filesystem {fs!r}")
    if os.geteuid() != 0:
        ap.error("must run as root (creates cgroups, mounts FUSE)")
    install_signal_handlers()

    notes: list[str] = []
    print(
        f"# bench_reads: {time.strftime('%Y-%m-%d %H:%M:%S')}, kernel {platform.release()}, "
        f"{os.cpu_count()} cpus, loadavg at start {os.getloadavg()[0]:.2f}, "
        f"{args.duration:g}s x {args.repeats} runs per cell, median shown"
        + (" -- FLOOR: containerfs column = adapter only, serving host files" if args.floor else ""),
        flush=True,
    )

    workdirs: dict[str, Path] = {}
    daemons: dict[str, FuseDaemon] = {}
    cg: Cgroup | None = None
    results: dict[tuple[str, int, str], list[float]] = {}
    cpu_per_read: dict[tuple[str, int, str], list[float]] = {}
    bad: dict[str, dict[str, str]] = {}
    status = 0
    try:
        cg, ncpus = setup_cgroup(f"cfsbench-{os.getpid()}")
        for fs in list(fs_list):
            workdirs[fs] = make_workdir(fs)
            daemon = make_daemon(fs, workdirs[fs], args.containerfs_arg, args.floor)
            daemons[fs] = daemon
            try:
                daemon.start()
            except DaemonError as exc:
                log(f"ERROR: {exc}")
                notes.append(f"{fs} did not start: {str(exc).splitlines()[0]}")
                fs_list.remove(fs)
                status = 1
        for fs in fs_list:
            bad[fs] = verify(cg, daemons[fs], files, ncpus)

        configs = [(name, n) for name in files for n in reader_counts]
        for rep in range(args.repeats):
            for ci, (name, n) in enumerate(configs):
                order = fs_list if (rep + ci) % 2 == 0 else list(reversed(fs_list))
                for fs in order:
                    path = str(daemons[fs].mountpoint / "proc" / name)
                    rate, us, note = run_readers(cg, daemons[fs].pid, path, n, args.duration)
                    results.setdefault((f"/proc/{name}", n, fs), []).append(rate)
                    cpu_per_read.setdefault((f"/proc/{name}", n, fs), []).append(us)
                    log(
                        f"run {rep + 1}/{args.repeats} /proc/{name} x{n} {fs}: "
                        f"{rate:,.0f} reads/s, daemon {us:.0f} us CPU/read" + (f"  [{note}]" if note else "")
                    )
                    if note:
                        notes.append(f"run {rep + 1} /proc/{name} x{n} {fs}: {note}")
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
        steps: list[tuple[str, Callable[[], object]]] = []
        if cg is not None:
            steps.append(("kill readers", cg.kill_all))
        steps += [(f"stop {fs}", d.stop) for fs, d in daemons.items()]
        if cg is not None:
            steps.append(("remove cgroup", cg.remove))
        steps += [(f"remove {p}", functools.partial(remove_workdir, p)) for p in workdirs.values()]
        run_cleanups(steps)
    if results or notes:
        print_table(results, cpu_per_read, files, reader_counts, fs_list, bad, notes)
    return status


if __name__ == "__main__":
    sys.exit(main())
