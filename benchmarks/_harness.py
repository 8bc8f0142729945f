#!/usr/bin/env python3
"""Shared plumbing for the containerfs benchmarks (not a benchmark itself).

- ContainerfsDaemon, LxcfsDaemon: the integration tests' FuseDaemon (start in the
  foreground on a temp mountpoint, wait until it serves, stop), serving <workdir>/mnt.
- Cgroup: create/configure/empty/remove a cgroup v1 group in several hierarchies.
- container_argv(): argv that runs a command "inside a container": a process that is
  the init of a fresh pid namespace, has its own mount namespace and has moved itself
  into the benchmark cgroup before exec'ing the command.
- Run as a script (``python3 _harness.py loop PATH START DURATION`` or
  ``python3 _harness.py cat PATH``) it is the reader process used by bench_reads.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
HARNESS = Path(__file__).resolve()

# The daemons, mounts and containers of the integration tests, shared (tests/integration/cfs_harness.py).
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests" / "integration")]
from cfs_harness import (  # noqa: E402
    DaemonError,
    FuseDaemon,
    containerfs_argv,
    force_unmount,
    is_mounted,
    log,
)

__all__ = ["DaemonError", "FuseDaemon", "force_unmount", "is_mounted", "log"]

# The container's first process runs this: join every listed cgroup.procs ("0" means
# "the writing process", resolved in the writer's own pid namespace), then exec the
# command after "--".
_JOIN_SCRIPT = 'while [ "$1" != "--" ]; do echo 0 > "$1" || exit 97; shift; done; shift; exec "$@"'


class ContainerfsDaemon(FuseDaemon):
    def __init__(self, workdir: Path, extra_args: Sequence[str] = (), floor: bool = False) -> None:
        self.workdir = workdir
        mountpoint = workdir / "mnt"
        if floor:  # the adapter alone, no views computed (floor_daemon.py)
            argv = [sys.executable, str(BENCH_DIR / "floor_daemon.py"), str(workdir / "run"), str(mountpoint)]
        else:
            # The control socket and the clean-stop record stay in the work dir, not /run/containerfs.
            run_dir = ["--run-dir", str(workdir / "run")] if "--run-dir" not in extra_args else []
            argv = containerfs_argv(mountpoint, *run_dir, *extra_args)
        super().__init__("containerfs", argv, mountpoint, workdir / "containerfs.log")


class LxcfsDaemon(FuseDaemon):
    def __init__(self, workdir: Path, binary: str = "lxcfs") -> None:
        self.workdir = workdir
        mountpoint = workdir / "mnt"
        argv = [binary, "-f", "-l", "--enable-cfs", "-p", str(workdir / "lxcfs.pid"), str(mountpoint)]
        super().__init__("lxcfs", argv, mountpoint, workdir / "lxcfs.log")


def make_daemon(name: str, workdir: Path, containerfs_args: Sequence[str] = (), floor: bool = False) -> FuseDaemon:
    if name == "containerfs":
        return ContainerfsDaemon(workdir, containerfs_args, floor)
    if name == "lxcfs":
        return LxcfsDaemon(workdir)
    raise ValueError(name)


def make_workdir(tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"cfsbench-{tag}-"))


def remove_workdir(path: Path) -> None:
    """Remove a temp dir, but never recurse into something still mounted."""
    if not path.exists():
        return
    for dirpath, dirnames, _files in os.walk(path):
        for d in list(dirnames):
            if is_mounted(os.path.join(dirpath, d)):
                log(f"  warning: {os.path.join(dirpath, d)} still mounted; keeping {path}")
                return
    shutil.rmtree(path, ignore_errors=True)


def process_cpu_seconds(pid: int) -> float:
    """utime+stime of all threads of ``pid`` plus its reaped children (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


# -------------------------------------------------------------------------- cgroups


class Cgroup:
    """One cgroup name present in several v1 hierarchies (/sys/fs/cgroup/<ctrl>/<name>)."""

    def __init__(self, name: str, controllers: Iterable[str]) -> None:
        self.name = name.strip("/")
        self.dirs: dict[str, Path] = {}
        seen: set[str] = set()
        for ctrl in controllers:
            base = CGROUP_ROOT / ctrl
            real = os.path.realpath(base)
            if real in seen:  # co-mounted hierarchies (cpu,cpuacct) appear once
                continue
            seen.add(real)
            self.dirs[ctrl] = base / self.name
        self.created: list[Path] = []

    def create(self) -> None:
        for ctrl, d in self.dirs.items():
            if not (CGROUP_ROOT / ctrl).is_dir():
                raise RuntimeError(f"no cgroup v1 hierarchy at {CGROUP_ROOT / ctrl}")
            d.mkdir()
            self.created.append(d)

    def write(self, ctrl: str, filename: str, value: str) -> None:
        (self.dirs[ctrl] / filename).write_text(value)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.created:
            with contextlib.suppress(OSError):
                out.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return out

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every process in the group until it is empty.  True when empty."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                log(f"  warning: {self.name}: processes survive SIGKILL: {sorted(pids)}")
                return False
            time.sleep(0.05)

    def remove(self) -> None:
        """Empty the group and rmdir it everywhere it was created.  Never raises."""
        try:
            self.kill_all()
        except Exception as exc:
            log(f"  warning: {self.name}: kill_all: {exc!r}")
        for d in reversed(self.created):
            for attempt in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or attempt == 49:
                        log(f"  warning: rmdir {d}: {exc}")
                        break
                    time.sleep(0.1)
        self.created.clear()


def container_argv(cgroup: Cgroup, argv: Sequence[str]) -> list[str]:
    """argv that runs ``argv`` as pid 1 of new pid+mount namespaces inside ``cgroup``.

    ``unshare`` stays in the host pid namespace (and outside the cgroup) as the parent;
    --kill-child makes the kernel SIGKILL the container init when unshare dies.
    """
    return [
        "unshare",
        "--pid",
        "--mount",
        "--fork",
        "--kill-child",
        "sh",
        "-c",
        _JOIN_SCRIPT,
        "cfsbench-join",
        *cgroup.procs_files(),
        "--",
        *argv,
    ]


def spawn(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Popen in a new session (Ctrl-C in the terminal must not reach it)."""
    return subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]


def kill_procs(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"  warning: pid {p.pid} did not die")


# --------------------------------------------------------------------------- signals


class Terminated(BaseException):
    """Raised from the SIGTERM/SIGHUP handler so that finally blocks run."""


def install_signal_handlers() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore_interrupts() -> None:
    """Called at the start of cleanup: a second Ctrl-C must not abort the cleanup."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def run_cleanups(steps: Sequence[tuple[str, Callable[[], object]]]) -> None:
    ignore_interrupts()
    for what, fn in steps:
        try:
            fn()
        except Exception as exc:
            log(f"  cleanup step {what!r} failed: {exc!r}")


# ---------------------------------------------------------------------------- reader


def _reader_loop(path: str, start: float, duration: float) -> int:
    """open / read until EOF / close ``path`` from ``start`` (CLOCK_MONOTONIC) on."""
    o_open, o_read, o_close, mono = os.open, os.read, os.close, time.monotonic
    rdonly = os.O_RDONLY
    delay = start - mono()
    if delay > 0:
        time.sleep(delay)
    end = start + duration
    count = errors = nbytes = 0
    first_error = ""
    t0 = mono()
    while mono() < end:
        try:
            fd = o_open(path, rdonly)
            try:
                while True:
                    chunk = o_read(fd, 65536)
                    if not chunk:
                        break
                    nbytes += len(chunk)
            finally:
                o_close(fd)
            count += 1
        except OSError as exc:
            errors += 1
            if not first_error:
                first_error = repr(exc)
            if errors >= 1000:
                break
    elapsed = mono() - t0
    print(
        json.dumps(
            {
                "pid_in_ns": os.getpid(),
                "count": count,
                "elapsed": elapsed,
                "bytes": nbytes,
                "errors": errors,
                "first_error": first_error,
                "late": -delay if delay < 0 else 0.0,
            }
        )
    )
    return 0


def _reader_cat(path: str) -> int:
    with open(path, "rb", buffering=0) as f:
        data = b""
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            data += chunk
    print(json.dumps({"pid_in_ns": os.getpid(), "content": data.decode("utf-8", "replace")}))
    return 0


def reader_main(argv: Sequence[str]) -> int:
    if len(argv) == 4 and argv[0] == "loop":
        return _reader_loop(argv[1], float(argv[2]), float(argv[3]))
    if len(argv) == 2 and argv[0] == "cat":
        return _reader_cat(argv[1])
    print("usage: _harness.py loop PATH START DURATION | cat PATH", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(reader_main(sys.argv[1:]))
