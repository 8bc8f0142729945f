#!/usr/bin/env python3
"""Hammer: many containers read every view every way at once; count what goes wrong.

containerfs and lxcfs are mounted side by side.  Each of --containers cgroup v1
"containers" (distinct memory limits; cpusets of one or two CPUs, so contents differ in
length) runs one worker per filesystem: pid 1 of its own pid and mount namespaces, with
threads that for --seconds read random views with random buffer sizes, start at random
offsets, hand a descriptor from one thread to another mid-file, and copy with sendfile.
Every complete content is checked:

- malformed: not ending in a newline, a NUL byte, a line that does not parse;
- foreign: another container's (or the host's) MemTotal, CPU count or online list;
- torn: /proc/stat's aggregate `cpu` line is not the sum of its `cpuN` lines;
- errors: a read that failed.

Also the daemons' RSS and open descriptors before and after.  Prints numbers; it is not
a test.  Usage: python3 benchmarks/bench_hammer.py [--seconds 30] [--containers 6]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from _harness import (
    CGROUP_ROOT,
    Cgroup,
    FuseDaemon,
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

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio")
VIEWS = (
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/loadavg",
    "proc/uptime",
    "proc/diskstats",
    "proc/swaps",
    "sys/devices/system/cpu/online",
)
FILESYSTEMS = ("containerfs", "lxcfs")
THREADS = 4

# ---------------------------------------------------------------------------- worker


def _whole_plain(path: str, rng: random.Random) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, rng.randint(1, 4096)):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# The first byte of views that always start the same way.
_FIRST = {
    "proc/meminfo": b"M",
    "proc/cpuinfo": b"p",
    "proc/stat": b"c",
    "proc/swaps": b"F",
    "sys/devices/system/cpu/online": b"0",
}


def _whole_offset_first(path: str, rng: random.Random) -> bytes:
    # A fresh open read first at offset 1 (where a recycled thread's leftovers showed):
    # what comes back must be the reader's own content from its second byte on.  (A read
    # at offset 0 afterwards would render afresh, as the kernel's seq_file does.)
    view = next((v for v in _FIRST if path.endswith(v)), None)
    if view is None:
        return _whole_plain(path, rng)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 1, os.SEEK_SET)
        return _FIRST[view] + b"".join(iter(lambda: os.read(fd, rng.randint(1, 4096)), b""))
    finally:
        os.close(fd)


def _whole_handoff(path: str, rng: random.Random) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        first = os.read(fd, rng.randint(1, 256))
        rest: list[bytes] = []
        other = threading.Thread(target=lambda: rest.append(b"".join(iter(lambda: os.read(fd, 512), b""))))
        other.start()
        other.join()
        return first + rest[0]
    finally:
        os.close(fd)


def _whole_sendfile(path: str, rng: random.Random) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    out = os.memfd_create("hammer")
    try:
        while os.sendfile(out, fd, None, 1 << 20):
            pass
        return os.pread(out, 1 << 20, 0)
    finally:
        os.close(out)
        os.close(fd)


WAYS = (_whole_plain, _whole_offset_first, _whole_handoff, _whole_sendfile)


def _check(view: str, data: bytes, expect: dict[str, object]) -> str | None:
    """None, or which kind of wrong: malformed, foreign, torn."""
    if b"\0" in data or (data and not data.endswith(b"\n")):
        return "malformed"
    text = data.decode(errors="replace")
    lines = text.splitlines()
    try:
        if view == "proc/meminfo":
            values = {line.split(":")[0]: int(line.split()[1]) for line in lines}
            if values["MemTotal"] != expect["memtotal"]:
                return "foreign"
        elif view == "proc/cpuinfo":
            if sum(line.startswith("processor") for line in lines) != expect["ncpus"]:
                return "foreign"
        elif view == "sys/devices/system/cpu/online":
            if text.strip() != expect["online"]:
                return "foreign"
        elif view == "proc/stat":
            cpus = [list(map(int, line.split()[1:])) for line in lines if line.startswith("cpu") and line[3] != " "]
            total = list(map(int, lines[0].split()[1:]))
            if len(cpus) != expect["ncpus"]:
                return "foreign"
            if [sum(column) for column in zip(*cpus)] != total:
                return "torn"
        elif view in ("proc/uptime", "proc/loadavg"):
            float(text.split()[0])
    except (ValueError, IndexError, KeyError):
        return "malformed"
    return None


def worker(mountpoint: str, expect: dict[str, object], seconds: float, seed: int) -> None:
    counts = {"reads": 0, "malformed": 0, "foreign": 0, "torn": 0, "errors": 0}
    samples: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        while time.monotonic() < deadline:
            view = rng.choice(VIEWS)
            way = rng.choice(WAYS)
            try:
                data = way(os.path.join(mountpoint, view), rng)
                wrong = _check(view, data, expect)
            except OSError as err:
                wrong, data = "errors", str(err).encode()
            with lock:
                counts["reads"] += 1
                if wrong:
                    counts[wrong] += 1
                    by_way = f"{wrong} by {way.__name__[len('_whole_') :]}"
                    counts[by_way] = counts.get(by_way, 0) + 1
                    if len(samples) < 3:
                        samples.append(f"{wrong} {view} {way.__name__}: {data[:120]!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"counts": counts, "samples": samples}), flush=True)


# ---------------------------------------------------------------------------- driver


def _cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _daemon_figures(daemon: FuseDaemon) -> tuple[int, int]:
    """(RSS in kB, open descriptors) of a daemon."""
    rss = 0
    with open(f"/proc/{daemon.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{daemon.pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--containers", type=int, default=6)
    args = parser.parse_args()
    install_signal_handlers()
    host_cpus = (CGROUP_ROOT / "cpuset" / "cpuset.cpus").read_text().strip()
    mems = (CGROUP_ROOT / "cpuset" / "cpuset.mems").read_text().strip()
    first_cpu = int(host_cpus.split("-")[0].split(",")[0])
    daemons: list[FuseDaemon] = []
    workdirs: list[Path] = []
    cgroups: list[Cgroup] = []
    procs = []
    try:
        for name in FILESYSTEMS:
            workdirs.append(make_workdir(f"hammer-{name}"))
            daemons.append(make_daemon(name, workdirs[-1]))
            daemons[-1].start()
        expectations = []
        for i in range(args.containers):
            cg = Cgroup(f"cfsbench-hammer-{os.getpid()}-{i}", CONTROLLERS)
            cg.create()
            cgroups.append(cg)
            cpus = str(first_cpu) if i % 2 == 0 else host_cpus
            cg.write("cpuset", "cpuset.cpus", cpus)
            cg.write("cpuset", "cpuset.mems", mems)
            memory = (128 + 32 * i) << 20
            cg.write("memory", "memory.limit_in_bytes", str(memory))
            ncpus = 1 if i % 2 == 0 else len(_cpulist(host_cpus))
            online = "0" if ncpus == 1 else f"0-{ncpus - 1}"
            expectations.append({"memtotal": memory >> 10, "ncpus": ncpus, "online": online})
        before = {d.name: _daemon_figures(d) for d in daemons}
        log(f"hammering {args.containers} containers x {len(daemons)} filesystems for {args.seconds:g} s")
        for i, cg in enumerate(cgroups):
            for daemon in daemons:
                argv = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "worker",
                    str(daemon.mountpoint),
                    json.dumps(expectations[i]),
                    str(args.seconds),
                    str(i),
                ]
                procs.append((daemon.name, spawn(container_argv(cg, argv), stdout=-1, stderr=-1)))
        totals = {d.name: {"reads": 0, "malformed": 0, "foreign": 0, "torn": 0, "errors": 0} for d in daemons}
        samples: dict[str, list[str]] = {d.name: [] for d in daemons}
        for name, proc in procs:
            out, err = proc.communicate(timeout=args.seconds + 120)
            try:
                result = json.loads(out.decode().strip().splitlines()[-1])
            except (IndexError, ValueError):
                log(f"  a {name} worker failed: {err.decode()[-500:]}")
                totals[name]["errors"] += 1
                continue
            for key, value in result["counts"].items():
                totals[name][key] = totals[name].get(key, 0) + value
            samples[name].extend(result["samples"][:2])
        after = {d.name: _daemon_figures(d) for d in daemons}
        print(f"hammer: {args.containers} containers, {THREADS} threads each per filesystem, {args.seconds:g} s")
        heading = f"{'reads':>8} {'malformed':>9} {'foreign':>8} {'torn':>6} {'errors':>7}"
        print(f"{'':12} {heading}  RSS kB / fds before -> after")
        for name, t in totals.items():
            (rss0, fd0), (rss1, fd1) = before[name], after[name]
            print(
                f"{name:12} {t['reads']:8} {t['malformed']:9} {t['foreign']:8} {t['torn']:6} {t['errors']:7}"
                f"  {rss0} / {fd0} -> {rss1} / {fd1}"
            )
            ways = {k: v for k, v in sorted(t.items()) if " by " in k}
            if ways:
                print(f"{'':12} of which: " + ", ".join(f"{k} {v}" for k, v in ways.items()))
        for name, lines in samples.items():
            for line in lines[:4]:
                print(f"  {name}: {line}")
        return 0
    except Terminated:
        log("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        steps: list[tuple[str, Callable[[], object]]] = [("workers", lambda: kill_procs(p for _, p in procs))]
        steps += [(f"cgroup {cg.name}", cg.remove) for cg in cgroups]
        steps += [(f"stop {d.name}", d.stop) for d in daemons]
        steps += [(f"workdir {w}", functools.partial(remove_workdir, w)) for w in workdirs]
        run_cleanups(steps)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
