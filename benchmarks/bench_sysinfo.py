#!/usr/bin/env python3
"""sysinfo(2) through containerfs, and what containerfs-runtime adds to a container's start.

Prints:
- calls: sysinfo(2) calls per second in a runc container (a static C loop, one thread),
  natively (plain runc) and through containerfs (started by containerfs-runtime: seccomp
  notification, the holder, the daemon's answer);
- start: the median of `run` of `true` over N runs: plain runc, containerfs-runtime with
  the container opted out (the wrapper's own cost: one Python start and the config.json
  rewrite skipped), and containerfs-runtime adding the hook and the sysinfo rule.

    python3 benchmarks/bench_sysinfo.py [--seconds 3] [--runs 25]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import REPO_ROOT, ContainerfsDaemon, log

sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))
sys.path.insert(0, str(REPO_ROOT))
from cfs_harness import ContainerFactory

from containerfs.sysinfo.paths import holder_pid, sysinfo_paths

MIB = 1024 * 1024
LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double seconds = atof(argv[1]), start = now(), end = start + seconds;
    unsigned long calls = 0, total = 0;
    struct sysinfo s;
    while (now() < end) {
        for (int i = 0; i < 16; i++) { if (sysinfo(&s) != 0) { perror("sysinfo"); return 1; } calls++; }
    }
    total = s.totalram * s.mem_unit;
    printf("%.0f %lu\n", calls / (now() - start), total);
    return 0;
}
"""


def wrapper_argv(daemon: ContainerfsDaemon) -> list[str]:
    return [
        "env",
        f"CONTAINERFS_MOUNTPOINT={daemon.mountpoint}",
        f"CONTAINERFS_RUN_DIR={daemon.workdir / 'run'}",
        "CONTAINERFS_RUNTIME_CONFIG=/nonexistent",
        sys.executable,
        "-s",
        "-m",
        "containerfs.runtime",
    ]


def calls_per_second(factory: ContainerFactory, bindir: Path, seconds: float) -> tuple[float, int]:
    rc, out, err = factory.one_shot(["/bench/loop", str(seconds)], memory=256 * MIB, extra_mounts=[(bindir, "/bench")])
    if rc != 0:
        raise RuntimeError(err)
    rate, total = out.split()
    return float(rate), int(total)


def start_seconds(factory: ContainerFactory, annotations: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    rc, _, err = factory.one_shot(["true"], annotations=annotations)
    if rc != 0:
        raise RuntimeError(err)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each sysinfo loop")
    parser.add_argument("--runs", type=int, default=25, help="container starts per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sysinfo-") as tmp:
        work = Path(tmp)
        bindir = work / "bin"
        bindir.mkdir()
        (work / "loop.c").write_text(LOOP_C)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(bindir / "loop"), str(work / "loop.c")], check=True)
        daemon = ContainerfsDaemon(work / "d")
        daemon.workdir.mkdir()
        daemon.start()
        paths = sysinfo_paths(str(daemon.mountpoint), str(daemon.workdir / "run"))
        # The harness annotates containers to take views only from daemons under its directory.
        plain = ContainerFactory(work)
        wrapped = ContainerFactory(work, runtime=wrapper_argv(daemon))
        try:
            log("sysinfo loops")
            native, native_total = calls_per_second(plain, bindir, args.seconds)
            through, through_total = calls_per_second(wrapped, bindir, args.seconds)
            assert through_total == 256 * MIB != native_total, (through_total, native_total)
            print(
                f"calls: sysinfo(2) in a container: {native:,.0f}/s natively, {through:,.0f}/s through "
                f"containerfs ({native / through:,.0f}x slower; totalram {native_total // MIB} MiB vs "
                f"{through_total // MIB} MiB)"
            )
            log(f"container starts, {args.runs} per variant")
            runs: dict[str, list[float]] = {"runc": [], "opted out": [], "wrapper": []}
            for _ in range(args.runs):
                runs["runc"].append(start_seconds(plain))
                runs["opted out"].append(start_seconds(wrapped, {"io.containerfs.skip": "true"}))
                runs["wrapper"].append(start_seconds(wrapped))
            med = {k: statistics.median(v) * 1000 for k, v in runs.items()}
            print(
                f"start: `run true` median of {args.runs}: runc {med['runc']:.0f} ms, containerfs-runtime "
                f"{med['wrapper']:.0f} ms (+{med['wrapper'] - med['runc']:.0f} ms: hook, seccomp listener, "
                f"Python start), opted out {med['opted out']:.0f} ms (+{med['opted out'] - med['runc']:.0f} ms)"
            )
        finally:
            for factory in (plain, wrapped):
                factory.cleanup()
            daemon.stop()
            pid = holder_pid(paths)
            if pid is not None:
                subprocess.run(["kill", str(pid)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
