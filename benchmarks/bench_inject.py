#!/usr/bin/env python3
"""Injection and restart healing with real runc containers, containerfs beside lxcfs.

Prints:
- heal: after `kill -9` of the daemon with N running containers whose views it served,
  the time from starting the new daemon to every container's views being live again
  (watched from the host in each container's mountinfo, then checked with
  `cat /proc/meminfo` inside each), and the same after a clean stop (SIGTERM) and start;
- lxcfs in the same situation: how many containers read /proc/meminfo again after lxcfs
  is restarted (it has no healing: the containers must be restarted);
- hook: the container start latency the OCI hook adds (`runc run` of `true`, with and
  without a createRuntime hook, alternated);
- watcher: from `runc run --detach` returning to the views being live, and the cost of
  one scan of /proc.

    python3 benchmarks/bench_inject.py [--containers 20] [--rounds 3] [--hook-runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import REPO_ROOT, ContainerfsDaemon, LxcfsDaemon, container_workdir
from cfs_harness import PREFIX, SESSION, ContainerFactory

from containerfs.containers.discover import discover

MIB = 1024 * 1024


def view_devs(pid: int) -> list[str]:
    """The superblocks of the containerfs views mounted in pid's namespace."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[2] for line in f if " - fuse.containerfs " in line]


def own_dev(mountpoint: Path) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(mountpoint) and " - fuse.containerfs " in line:
                return fields[2]
    return ""


def wait_live(pids: list[int], mountpoint: Path, views: int | None, timeout: float = 30.0) -> float:
    """Seconds until every pid has exactly `views` view mounts (None: some), all of the live daemon.

    How many a container gets depends on the host (its block devices), hence None for a
    container whose count is not known yet: the views come in one go, all or none.
    """

    def live(pid: int, dev: str) -> bool:
        devs = view_devs(pid)
        return devs == [dev] * (len(devs) if views is None else views) and bool(devs)

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        dev = own_dev(mountpoint)
        if dev and all(live(pid, dev) for pid in pids):
            return time.monotonic() - started
        time.sleep(0.002)
    raise RuntimeError(f"views not live in all {len(pids)} containers within {timeout}s")


def memtotals(containers: list) -> list[int]:
    out = []
    for c in containers:
        rc, text, _ = c.sh("head -1 /proc/meminfo")
        out.append(int(text.split()[1]) * 1024 if rc == 0 else -1)
    return out


def inject(mountpoint: Path, pids: list[int]) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "containerfs", "inject", "--mountpoint", str(mountpoint), *map(str, pids)],
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    return time.monotonic() - started


def bench_heal(work: Path, factory: ContainerFactory, n: int, rounds: int) -> None:
    limits = [(128 + i) * MIB for i in range(n)]
    containers = [factory.create(memory=limit, name=f"h{i}") for i, limit in enumerate(limits)]
    pids = [c.pid for c in containers]
    daemon = ContainerfsDaemon(work, ["--run-dir", str(work / "run")])
    daemon.start()
    try:
        print(f"inject: {n} containers, one `containerfs inject` command: {inject(daemon.mountpoint, pids):.3f} s")
        per_container = len(view_devs(pids[0]))  # the views this host's daemon serves
        for label, stop in (("kill -9", daemon.kill), ("clean stop", daemon.stop)):
            times = []
            for _ in range(rounds):
                stop()
                started = time.monotonic()
                daemon.proc = None
                daemon.start(timeout=30)
                ready = time.monotonic() - started
                healed = wait_live(pids, daemon.mountpoint, per_container)
                times.append(ready + healed)
                assert memtotals(containers) == limits, "a container reads wrong or no views"
            daemon_line = [line for line in daemon.log_path.read_text().splitlines() if "healed views" in line]
            print(
                f"heal after {label}: {n} containers live again {statistics.median(times) * 1000:.0f} ms "
                f"(median of {rounds}; min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) after the "
                f"daemon was started; daemon says: {daemon_line[-1].split(' INFO ')[-1] if daemon_line else '?'}"
            )
    finally:
        daemon.stop()


def bench_lxcfs_restart(work: Path, factory: ContainerFactory, n: int) -> None:
    lxcfs = LxcfsDaemon(work / "lxcfs")
    lxcfs.workdir.mkdir()
    lxcfs.start()
    try:
        containers = [
            factory.create(memory=(128 + i) * MIB, name=f"l{i}", views_from=lxcfs.mountpoint) for i in range(n)
        ]
        lxcfs.kill()
        subprocess.run(["fusermount3", "-uz", str(lxcfs.mountpoint)], check=True)  # lxcfs needs this by hand
        lxcfs.proc = None
        lxcfs.start()
        time.sleep(5)
        working = sum(total > 0 for total in memtotals(containers))
        print(f"lxcfs after kill -9 and restart: {working}/{n} containers read /proc/meminfo 5 s later")
    finally:
        lxcfs.stop()


def runc_seconds(factory: ContainerFactory, hooks: dict | None) -> float:
    started = time.monotonic()
    rc, _, err = factory.one_shot(["true"], hooks=hooks)
    if rc != 0:
        raise RuntimeError(err)
    return time.monotonic() - started


def bench_hook(work: Path, factory: ContainerFactory, runs: int, python: str) -> None:
    daemon = ContainerfsDaemon(work / "hook")
    daemon.workdir.mkdir()
    daemon.start()
    # -s like the RPM's launcher.
    argv = [python, "-s", "-m", "containerfs", "oci-hook", "--mountpoint", str(daemon.mountpoint)]
    hooks = {"createRuntime": [{"path": python, "args": argv, "env": [f"PYTHONPATH={REPO_ROOT}"]}]}
    plain, hooked = [], []
    try:
        for _ in range(runs):
            plain.append(runc_seconds(factory, None))
            hooked.append(runc_seconds(factory, hooks))
    finally:
        daemon.stop()
    p, h = statistics.median(plain) * 1000, statistics.median(hooked) * 1000
    print(
        f"hook ({python}): `runc run true` median {p:.0f} ms without, {h:.0f} ms with the hook: "
        f"+{h - p:.0f} ms ({runs} runs each)"
    )


def bench_watcher(work: Path, factory: ContainerFactory, n: int) -> None:
    daemon = ContainerfsDaemon(work / "watch", ["--watch", "--watch-include", f"/{PREFIX}-{SESSION}*"])
    daemon.workdir.mkdir()
    daemon.start()
    try:
        delays = []
        for i in range(n):
            c = factory.create(name=f"w{i}")
            started = time.monotonic()
            wait_live([c.pid], daemon.mountpoint, None)
            delays.append(time.monotonic() - started)
        scans = []
        for _ in range(50):
            started = time.perf_counter()
            found = discover("/proc")
            scans.append(time.perf_counter() - started)
        print(
            "watcher (inotify on the cgroup hierarchy, 1 s poll behind it): views live "
            f"{statistics.median(delays) * 1000:.0f} ms median "
            f"(max {max(delays) * 1000:.0f}) after `runc run --detach` returned; one scan of /proc "
            f"({len(found)} containers, {sum(1 for p in Path('/proc').iterdir() if p.name.isdigit())} processes): "
            f"{statistics.median(scans) * 1000:.2f} ms"
        )
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hook-runs", type=int, default=15)
    parser.add_argument(
        "--hook-python",
        default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
        help="the interpreter the hook runs with, as a package would install it (default: %(default)s)",
    )
    args = parser.parse_args()
    with container_workdir() as (work, factory):
        bench_heal(work, factory, args.containers, args.rounds)
        bench_lxcfs_restart(work, factory, 5)
        bench_hook(work, factory, args.hook_runs, args.hook_python)
        bench_watcher(work, factory, 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
