#!/usr/bin/env python3
"""Shared plumbing for the containerfs benchmarks (not a benchmark itself).

- Daemon: start containerfs or lxcfs in the foreground on a temp mountpoint, wait
  until it serves, stop it (SIGTERM, then ``fusermount3 -uz`` and SIGKILL if needed).
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

# The container's first process runs this: join every listed cgroup.procs ("0" means
# "the writing process", resolved in the writer's own pid namespace), then exec the
# command after "--".
_JOIN_SCRIPT = 'while [ "$1" != "--" ]; do echo 0 > "$1" || exit 97; shift; done; shift; exec "$@"'


def log(msg: str) -> None:
    """Progress output goes to stderr so stdout holds only the results."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- mounts


def _unescape_mountinfo(field: str) -> str:
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a mount point in this process's mount namespace."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
                return True
    return False


def fuse_unmount(path: str | os.PathLike[str]) -> None:
    """Lazy-unmount ``path`` while it is still mounted (fusermount3, then umount)."""
    for argv in (["fusermount3", "-uz", str(path)], ["umount", "-l", str(path)]):
        if not is_mounted(path):
            return
        try:
            subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"  warning: {argv[0]} {path}: {exc}")


# -------------------------------------------------------------------------- daemons


class DaemonError(RuntimeError):
    pass


class Daemon:
    """A FUSE daemon serving ``<workdir>/mnt`` in the foreground."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.mountpoint = workdir / "mnt"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_file: str = "proc/meminfo", timeout: float = 30.0) -> None:
        """Start the daemon and wait until ``ready_file`` can be read through the mount."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        log(f"starting {self.name}: {' '.join(argv)}")
        with open(self.log_path, "wb") as logf:
            # New session: a Ctrl-C in the terminal reaches only the harness, which
            # then stops the daemon itself in its finally blocks.
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(REPO_ROOT),
                env=self.env(),
            )
        probe = self.mountpoint / ready_file
        deadline = time.monotonic() + timeout
        last_error = "not mounted yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError(
                    f"{self.name} exited with status {self.proc.returncode} before serving "
                    f"{probe}; log:\n{self.log_tail()}"
                )
            if is_mounted(self.mountpoint):
                try:
                    with open(probe, "rb") as f:
                        if f.read():
                            log(f"{self.name} ready (pid {self.proc.pid}) on {self.mountpoint}")
                            return
                        last_error = "empty read"
                except OSError as exc:
                    last_error = repr(exc)
            time.sleep(0.1)
        raise DaemonError(
            f"{self.name} did not serve {probe} within {timeout:.0f}s ({last_error}); log:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(log empty)"

    def stop(self) -> None:
        """SIGTERM, wait; then force: fusermount3 -uz and SIGKILL.  Never raises."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} ignored SIGTERM for 10s")
            except OSError:
                pass
        if is_mounted(self.mountpoint):
            log(f"  {self.name}: {self.mountpoint} still mounted, fusermount3 -uz")
            fuse_unmount(self.mountpoint)
        if proc is not None and proc.poll() is None:
            log(f"  {self.name}: SIGKILL pid {proc.pid}")
            try:
                proc.kill()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc is not None and proc.returncode not in (None, 0, -signal.SIGTERM):
            log(f"  {self.name} exited with status {proc.returncode} after SIGTERM")
        if is_mounted(self.mountpoint):
            fuse_unmount(self.mountpoint)


class ContainerfsDaemon(Daemon):
    def __init__(self, workdir: Path, extra_args: Sequence[str] = (), floor: bool = False) -> None:
        super().__init__("containerfs", workdir)
        self.extra_args = list(extra_args)
        self.floor = floor

    def argv(self) -> list[str]:
        # floor_daemon.py takes the same arguments: the adapter alone, no views computed.
        entry = [str(REPO_ROOT / "benchmarks" / "floor_daemon.py")] if self.floor else ["-m", "containerfs"]
        # The control socket and the clean-stop record stay in the work dir, not /run/containerfs.
        run_dir = ["--run-dir", str(self.workdir / "run")] if "--run-dir" not in self.extra_args else []
        return [sys.executable, *entry, "mount", "-f", *run_dir, *self.extra_args, str(self.mountpoint)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        pp = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
        return env


class LxcfsDaemon(Daemon):
    def __init__(self, workdir: Path, binary: str = "lxcfs") -> None:
        super().__init__("lxcfs", workdir)
        self.binary = binary

    def argv(self) -> list[str]:
        return [self.binary, "-f", "-l", "--enable-cfs", "-p", str(self.workdir / "lxcfs.pid"), str(self.mountpoint)]


def containerfs_available() -> str | None:
    """None if ``python -m containerfs mount`` can plausibly run, else the reason."""
    if not (REPO_ROOT / "containerfs" / "__main__.py").exists():
        return f"{REPO_ROOT}/containerfs/__main__.py missing"
    if not (REPO_ROOT / "containerfs" / "daemon" / "mount.py").exists():
        return f"{REPO_ROOT}/containerfs/daemon/mount.py missing"
    return None


def make_daemon(name: str, workdir: Path, containerfs_args: Sequence[str] = (), floor: bool = False) -> Daemon:
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


def run_cleanups(steps: Sequence[tuple[str, Callable[[], None]]]) -> None:
    ignore_interrupts()
    for what, fn in steps:
        try:
            fn()
        except Exception as exc:
            log(f"  cleanup step {what!r} failed: {exc!r}")
