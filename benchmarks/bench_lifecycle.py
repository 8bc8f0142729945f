#!/usr/bin/env python3
"""Stopping and restarting the daemon with N running runc containers that have its views.

Prints:
- umount: the time `containerfs umount` takes to return, which it does once the daemon has
  taken its views out of every container, written its record and exited;
- heal, per restart kind (clean stop by SIGTERM then start; `containerfs umount` then
  mount; kill -9 then start): from starting the new daemon to every container's views
  being live again (watched in each container's mountinfo), including the daemon's own
  start-up.  After each one, every mount namespace on the machine is checked for
  containerfs mounts outside the view targets (assert_no_stray_views).

    python3 benchmarks/bench_lifecycle.py [--containers 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import REPO_ROOT, ContainerfsDaemon, container_workdir
from bench_inject import MIB, inject, memtotals, view_devs, wait_live

sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))
from cfs_harness import ContainerFactory, assert_no_stray_views


def umount(daemon: ContainerfsDaemon) -> float:
    run_dir = str(daemon.workdir / "run")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "containerfs", "umount", "--run-dir", run_dir, str(daemon.mountpoint)],
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    took = time.monotonic() - started
    assert daemon.proc is not None and daemon.proc.poll() is not None, "umount returned before the daemon exited"
    return took


def bench(work: Path, factory: ContainerFactory, n: int, rounds: int) -> None:
    limits = [(128 + i) * MIB for i in range(n)]
    containers = [factory.create(memory=limit, name=f"s{i}") for i, limit in enumerate(limits)]
    pids = [c.pid for c in containers]
    daemon = ContainerfsDaemon(work)
    daemon.start()
    umounts: list[float] = []
    try:
        inject(daemon.mountpoint, pids)
        per_container = len(view_devs(pids[0]))  # the views this host's daemon serves
        wait_live(pids, daemon.mountpoint, per_container)

        def sigterm() -> None:
            assert daemon.proc is not None
            daemon.proc.terminate()
            daemon.proc.wait()

        def by_umount() -> None:
            umounts.append(umount(daemon))

        def kill() -> None:
            assert daemon.proc is not None
            daemon.proc.kill()
            daemon.proc.wait()

        for label, stop in (("clean stop + start", sigterm), ("umount + mount", by_umount), ("kill -9 + start", kill)):
            times = []
            for _ in range(rounds):
                stop()
                assert_no_stray_views(daemon.mountpoint)
                started = time.monotonic()
                daemon.proc = None
                daemon.start(timeout=30)
                wait_live(pids, daemon.mountpoint, per_container)
                times.append(time.monotonic() - started)
                assert memtotals(containers) == limits, "a container reads wrong or no views"
                assert_no_stray_views(daemon.mountpoint)
            healed = [line for line in daemon.log_path.read_text().splitlines() if "healed views" in line]
            print(
                f"heal after {label}: {n} containers live again {statistics.median(times) * 1000:.0f} ms after "
                f"the start (median of {rounds}; min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
                f"daemon says: {healed[-1].split(' INFO ')[-1] if healed else '?'}"
            )
        print(
            f"umount with {n} containers: returned, daemon exited, {statistics.median(umounts) * 1000:.0f} ms "
            f"(median of {len(umounts)}; max {max(umounts) * 1000:.0f})"
        )
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with container_workdir() as (work, factory):
        bench(work, factory, args.containers, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
