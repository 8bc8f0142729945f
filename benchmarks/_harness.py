#!/usr/bin/env python3
"""Shared plumbing for the containerfs benchmarks (not a benchmark itself).

- ContainerfsDaemon, LxcfsDaemon: the integration tests' FuseDaemon (start in the
  foreground on a temp mountpoint, wait until it serves, stop), serving <workdir>/mnt.
- Cgroup: create/configure/empty/remove a cgroup v1 group in several hierarchies.
- container_argv(): argv that runs a command "inside a container": a process that is
  the init of a fresh pid namespace, has its own mount namespace and has moved itself
  into the benchmark cgroup before exec'ing the command.
- RuncContainer: a runc container (bench_reads.py's readers run in it; _reader.py).
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
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

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
        # The control socket and the clean-stop record stay in the work dir, not /run/containerfs.
        run_dir = ["--run-dir", str(workdir / "run")] if "--run-dir" not in extra_args else []
        argv = containerfs_argv(mountpoint, *run_dir, *extra_args)
        if floor:  # the adapter alone, no views computed: floor_daemon.py takes the same arguments
            argv[1:3] = [str(BENCH_DIR / "floor_daemon.py")]
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


class RuncContainer:
    """A runc container: read-only rootfs of the host's /usr and /etc, binds, v1 resources.

    Its cgroup is ``/<name>/c``: removing ``/<name>`` in every hierarchy cleans up.
    """

    def __init__(
        self,
        name: str,
        workdir: Path,
        binds: dict[str, str],
        memory: int,
        cpus: str,
        quota: int,
        period: int,
    ) -> None:
        self.name = name
        self.bundle = workdir / "bundle"
        self.binds = binds  # host path -> path in the container
        self.memory, self.cpus, self.quota, self.period = memory, cpus, quota, period
        self.created = False

    def _spec(self) -> dict[str, object]:
        subprocess.run(["runc", "spec"], cwd=self.bundle, check=True, capture_output=True)
        spec: dict[str, Any] = json.loads((self.bundle / "config.json").read_text())
        spec["process"].update(terminal=False, args=["sleep", "infinity"])
        spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"]
        spec["root"] = {"path": "rootfs", "readonly": True}
        binds = {"/usr": "/usr", "/etc": "/etc", **self.binds}
        spec["mounts"] += [
            {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro"]}
            for src, dst in binds.items()
        ]
        spec["linux"]["resources"] = {
            "memory": {"limit": self.memory},
            "cpu": {"cpus": self.cpus, "quota": self.quota, "period": self.period},
        }
        spec["linux"]["cgroupsPath"] = f"/{self.name}/c"
        return spec

    def create(self) -> None:
        rootfs = self.bundle / "rootfs"
        for d in ("usr", "etc", "proc", "sys", "dev", "tmp", *(dst.lstrip("/") for dst in self.binds.values())):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            (rootfs / link).symlink_to(f"usr/{link}")
        (self.bundle / "config.json").write_text(json.dumps(self._spec()))
        self.created = True
        # The detached init inherits stdio: a file, not a pipe that would never see EOF.
        errors = self.bundle / "runc.log"
        with open(errors, "wb") as out:
            p = subprocess.run(
                ["runc", "run", "--detach", self.name],
                cwd=self.bundle,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        if p.returncode != 0:
            raise RuntimeError(f"runc run {self.name} failed: {errors.read_text(errors='replace').strip()}")

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["runc", "exec", self.name, *argv]

    def remove(self) -> None:
        """Delete the container and its cgroups.  Never raises."""
        if not self.created:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["runc", "delete", "-f", self.name], capture_output=True, timeout=30)
        for hierarchy in CGROUP_ROOT.iterdir():
            parent = hierarchy / self.name
            for d in (parent / "c", parent):
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        if exc.errno != errno.EBUSY:
                            log(f"  warning: rmdir {d}: {exc}")
                            break
                        time.sleep(0.1)
        self.created = False


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
