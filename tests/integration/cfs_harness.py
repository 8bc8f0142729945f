"""Integration harness helpers: FUSE daemons (containerfs, lxcfs), runc containers, cgroups.

Used by conftest.py (fixtures) and by the tests.  Naming: containers are
``cfstest-<session><uniq>-<name>`` with cgroupsPath ``/cfstest-<session><uniq>/<name>``, so
cleanup (and the end-of-session sweep) only ever touches what this session created.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from containerfs.host.fsread import read_text
from containerfs.procfs.mountinfo import parse_mountinfo

REPO_ROOT = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")
REQUIRED_TOOLS = ("runc", "lxcfs", "fusermount3", "free", "top", "uptime", "iostat")
PREFIX = "cfstest"
# Timeouts are for this machine; the cgroup v2 guest (software-emulated qemu, root over
# 9p) is several times slower: scripts/v2-guest.sh sets CONTAINERFS_IT_SLOW there.
SLOW = float(os.environ.get("CONTAINERFS_IT_SLOW", "1"))


def scaled(seconds):
    """A timeout or a time bound, stretched on slow hosts."""
    return seconds * SLOW


# Per-session token: the end-of-session sweep only touches what this session created.
# CFSTEST_SESSION fixes it, so a daemon started outside the suite can be pointed at the
# suite's containers (--watch-include '/cfstest-TOKEN*') and no one else's.
SESSION = os.environ.get("CFSTEST_SESSION") or uuid.uuid4().hex[:6]

# The eight synthesized files: mount-relative path -> path inside the container.
VIEW_FILES = {
    "proc/meminfo": "/proc/meminfo",
    "proc/cpuinfo": "/proc/cpuinfo",
    "proc/stat": "/proc/stat",
    "proc/loadavg": "/proc/loadavg",
    "proc/uptime": "/proc/uptime",
    "proc/diskstats": "/proc/diskstats",
    "proc/swaps": "/proc/swaps",
    "sys/devices/system/cpu/online": "/sys/devices/system/cpu/online",
}

# Views under /proc that runc refuses as spec mounts: they arrive by inject or the hook.
PRESSURE_FILES = {f"proc/pressure/{r}": f"/proc/pressure/{r}" for r in ("cpu", "memory", "io")}
ALL_VIEWS = len(VIEW_FILES) + len(PRESSURE_FILES)
# What inject attaches in a container: without PSI the kernel has no /proc/pressure to cover.
INJECTED = len(VIEW_FILES) + (len(PRESSURE_FILES) if os.path.exists("/proc/pressure/cpu") else 0)

# Python inside containers: Debian's interpreter, reachable because /usr is bound.
CONTAINER_PYTHON = "/usr/bin/python3"

# --------------------------------------------------------------------------- prerequisites


def cgroup_v2():
    """Whether this host's /sys/fs/cgroup is the unified hierarchy (not v1 or hybrid)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def memory_limit_file():
    """The file that sets a cgroup's memory limit on this host's layout."""
    return "memory.max" if cgroup_v2() else "memory.limit_in_bytes"


def missing_prerequisites():
    missing = []
    if os.geteuid() != 0:
        missing.append("must run as root")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse missing")
    else:
        try:
            os.close(os.open("/dev/fuse", os.O_RDWR))
        except OSError as exc:
            missing.append(f"/dev/fuse not usable: {exc}")
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            missing.append(f"{tool} not found in PATH")
    if not os.path.exists(CONTAINER_PYTHON):
        missing.append(f"{CONTAINER_PYTHON} missing (needed inside containers)")
    if not (CGROUP_ROOT / "memory").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        missing.append("no cgroup hierarchy at /sys/fs/cgroup")
    return missing


def sweep_leftovers():
    found = []
    try:
        ids = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True, timeout=20).stdout.split()
    except Exception:
        ids = []
    for cid in ids:
        if cid.startswith(f"{PREFIX}-{SESSION}"):
            found.append(f"container {cid}")
            subprocess.run(["runc", "delete", "-f", cid], capture_output=True, timeout=30)
    for hier in cgroup_hierarchies():
        for d in hier.glob(f"{PREFIX}-{SESSION}*"):
            found.append(f"cgroup {d}")
            remove_cgroup_tree(d)
    return found


# --------------------------------------------------------------------------- FUSE daemons
# Shared with the benchmarks (benchmarks/_harness.py imports them).


def log(msg: str) -> None:
    """Progress on stderr: pytest captures it, and a benchmark's stdout keeps only its results."""
    print(msg, file=sys.stderr, flush=True)


def mount_count(path: str | os.PathLike[str]) -> int:
    """How many mounts are stacked at path in this process's mount namespace."""
    target = os.path.realpath(path)
    return sum(1 for mount in parse_mountinfo(read_text("/proc/self/mountinfo")) if mount.mountpoint == target)


def is_mounted(path: str | os.PathLike[str]) -> bool:
    return mount_count(path) > 0


def force_unmount(path: str | os.PathLike[str]) -> None:
    """Lazily detach every mount stacked at path (fusermount3, then umount).  Never raises."""
    for _ in range(5):
        for argv in (["fusermount3", "-uz", str(path)], ["umount", "-l", str(path)]):
            if not is_mounted(path):
                return
            try:
                subprocess.run(argv, capture_output=True, timeout=20)
            except (OSError, subprocess.SubprocessError) as exc:
                log(f"  warning: {argv[0]} {path}: {exc}")


class DaemonError(RuntimeError):
    """A daemon exited or did not serve in time."""


def stray_views(mountpoint: str | os.PathLike[str] | None = None) -> list[tuple[int, str, str, str]]:
    """Every containerfs mount on the machine that is neither a view file at its own target
    nor a copy of a whole mountpoint away from "/": (pid, mountpoint, root, source) tuples.

    mountpoint: only mounts of the daemon serving it (its fsname); None: every daemon's.
    Allowed: a view mounted at its target (/proc/meminfo), also under a rootfs prefix
    (a container being created); a copy of a whole mountpoint (root "/", e.g. the host's
    own mount, or a `-v /:/rootfs` / `unshare -m` copy) anywhere except at "/".
    """
    source = None if mountpoint is None else "containerfs:" + os.path.abspath(str(mountpoint))
    stray: list[tuple[int, str, str, str]] = []
    seen: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/mnt")
            if ns in seen:
                continue
            mounts = parse_mountinfo(read_text(f"/proc/{entry}/mountinfo"))
        except OSError:
            continue  # exited while we looked, or a kernel thread
        seen.add(ns)
        for mount in mounts:
            if mount.fstype != "fuse.containerfs" or (source is not None and mount.source != source):
                continue
            whole_copy = mount.root == "/"
            # A view (a file, or the cpu directory bound whole) mirrors its target's path.
            at_target = mount.root.startswith(("/proc/", "/sys/")) and mount.mountpoint.endswith(mount.root)
            if mount.mountpoint == "/" or not (whole_copy or at_target):
                stray.append((int(entry), mount.mountpoint, mount.root, mount.source))
    return stray


def assert_no_stray_views(mountpoint: str | os.PathLike[str] | None = None) -> None:
    """Check every mount namespace on the machine: no containerfs mount at "/" or outside
    the view targets (see stray_views).  Use after every lifecycle step."""
    stray = stray_views(mountpoint)
    assert not stray, f"containerfs mounts outside view targets (pid, at, root, source): {stray}"


class FuseDaemon:
    """A FUSE daemon running in the foreground as a child of this process, in its own session."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        mountpoint: str | os.PathLike[str],
        log_path: str | os.PathLike[str],
        ready_file: str = "proc/meminfo",
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]  # tests pass Paths among the options
        self.mountpoint = Path(mountpoint)
        self.log_path = Path(log_path)
        self.ready_file = ready_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> FuseDaemon:
        """Start the daemon and wait until ready_file can be read through the mount."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        log(f"starting {self.name}: {' '.join(map(str, self.argv))}")
        with open(self.log_path, "ab") as log_file:
            # A new session: a Ctrl-C in the terminal reaches only the test or benchmark,
            # which then stops the daemon itself.
            proc = self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT),
                env=env,
                start_new_session=True,
            )
        timeout = scaled(timeout)
        probe = self.mountpoint / self.ready_file
        deadline = time.monotonic() + timeout
        last_error = "not mounted yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonError(f"{self.name} exited early with rc={proc.returncode}:\n" + self.log_tail())
            if is_mounted(self.mountpoint):
                try:
                    with open(probe, "rb") as f:
                        if f.read():
                            return self
                        last_error = "empty read"
                except OSError as exc:
                    last_error = repr(exc)
            time.sleep(0.05)
        raise DaemonError(f"{self.name} did not serve {probe} within {timeout}s ({last_error}):\n" + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def path(self, rel: str) -> Path:
        return self.mountpoint / rel

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(log empty)"

    def kill(self) -> None:
        """SIGKILL and reap: the daemon dies as in a crash, its mount is left dead."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; then detach the mount and SIGKILL.  Never raises."""
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=scaled(timeout))
                except subprocess.TimeoutExpired:
                    log(f"  {self.name} ignored SIGTERM for {timeout}s")
                    # Detached first: a daemon stuck in a FUSE request may only die once
                    # its mount is gone.
                    force_unmount(self.mountpoint)
                    proc.kill()
                    proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"  {self.name}: stopping pid {proc.pid if proc else '?'} failed: {exc!r}")
        finally:
            force_unmount(self.mountpoint)


def containerfs_argv(mountpoint: str | os.PathLike[str], *extra: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "containerfs", "mount", "-f", *map(str, extra), str(mountpoint)]


# --------------------------------------------------------------------------- cgroups


def cgroup_hierarchies():
    """Mount points of every cgroup hierarchy (v1 controllers and any v2 tree)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0] if right else ""
            if fstype in ("cgroup", "cgroup2"):
                out.append(Path(left.split()[4]))
    return out


def v1_controller_dirs():
    """Map of v1 controller name (as in /proc/PID/cgroup) -> hierarchy mount point."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts = right.split()
            if not parts or parts[0] != "cgroup":
                continue
            opts = parts[2].split(",") if len(parts) > 2 else []
            names = [o for o in opts if o.startswith("name=")]
            ctrls = [
                o
                for o in opts
                if o
                in (
                    "cpu",
                    "cpuacct",
                    "cpuset",
                    "memory",
                    "blkio",
                    "pids",
                    "devices",
                    "freezer",
                    "net_cls",
                    "net_prio",
                    "perf_event",
                    "hugetlb",
                    "rdma",
                    "misc",
                )
            ]
            key = ",".join(sorted(ctrls + names))
            out[key] = Path(left.split()[4])
    return out


def remove_cgroup_tree(path, timeout=10.0):
    """rmdir a cgroup directory and its sub-cgroups, bottom-up, retrying on EBUSY."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while path.exists():
        dirs = sorted((Path(root) for root, _, _ in os.walk(path)), key=lambda p: len(p.parts), reverse=True)
        busy = False
        for d in dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                busy = True
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return not path.exists()


# --------------------------------------------------------------------------- runc containers


def run(argv, timeout=60, check=False, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(timeout), stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv} failed rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def _bind(src, dst, ro=True):
    return {"destination": dst, "type": "bind", "source": str(src), "options": ["bind", "ro"] if ro else ["bind"]}


class Container:
    def __init__(self, cid, bundle, cgroup_parent, cgroup_path, shared_dir):
        self.id = cid
        self.bundle = Path(bundle)
        self.cgroup_parent = cgroup_parent  # e.g. /cfstest-1a2b3c4d
        self.cgroup_path = cgroup_path  # e.g. /cfstest-1a2b3c4d/name
        self.shared = Path(shared_dir)  # host dir bound rw at /shared in the container
        self.result = None  # (rc, stdout, stderr) for one-shots

    def state(self):
        p = run(["runc", "state", self.id], check=True)
        return json.loads(p.stdout)

    @property
    def pid(self):
        return self.state()["pid"]

    def exec(self, *args, timeout=60):
        """Run a command inside the container; returns (rc, stdout, stderr)."""
        p = run(["runc", "exec", self.id, *args], timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def sh(self, script, timeout=60):
        return self.exec("/bin/sh", "-c", script, timeout=timeout)

    def exec_detached(self, *args):
        """Start a process in the container without waiting; returns its host pid."""
        tag = uuid.uuid4().hex[:8]
        pidfile = self.bundle / f"exec-{tag}.pid"
        errfile = self.bundle / f"exec-{tag}.err"
        # The detached process inherits stdio: files, not pipes (a pipe would never see EOF).
        with open(errfile, "wb") as err:
            p = subprocess.run(
                ["runc", "exec", "--detach", "--pid-file", str(pidfile), self.id, *args],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                timeout=scaled(60),
            )
        if p.returncode != 0:
            raise RuntimeError(f"runc exec --detach failed: {errfile.read_text()}")
        return int(pidfile.read_text().strip())

    def cgroup_dirs(self):
        """Hierarchy mount point -> this container's cgroup directory there (one on v2)."""
        ctrl = v1_controller_dirs()
        out = {}
        with open(f"/proc/{self.pid}/cgroup") as f:
            for line in f:
                hid, ctrls, path = line.rstrip("\n").split(":", 2)
                if hid == "0" and cgroup_v2():
                    out[CGROUP_ROOT] = CGROUP_ROOT / path.lstrip("/")
                if hid == "0" or not ctrls:
                    continue
                key = ",".join(sorted(ctrls.split(",")))
                if key in ctrl:
                    out[ctrl[key]] = ctrl[key] / path.lstrip("/")
        return out


class ContainerFactory:
    def __init__(self, tmp_path, runtime=("runc",)):
        self.tmp_path = Path(tmp_path)
        self.containers = []
        # The argv that runs `run`: runc, or a wrapper such as containerfs-runtime.
        self.runtime = list(runtime)

    def _spec(
        self,
        bundle,
        args,
        cgroups_path,
        *,
        memory=256 * 1024 * 1024,
        memory_swap=None,
        cpu_quota=None,
        cpu_period=100000,
        cpus="0-1",
        views_from=None,
        views=None,
        extra_mounts=(),
        rbind_mounts=(),
        block_devices=(),
        env=(),
        block_io=None,
        hooks=None,
        annotations=None,
        pids_limit=None,
        seccomp=None,
        rw_mounts=(),
        cgroup_rw=False,
        unified=None,
    ):
        subprocess.run(["runc", "spec"], cwd=bundle, check=True, capture_output=True)
        spec = json.loads((bundle / "config.json").read_text())
        proc = spec["process"]
        proc["terminal"] = False
        proc["args"] = list(args)
        proc["env"] = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
            "LANG=C",
            "LC_ALL=C",
            *env,
        ]
        spec["root"] = {"path": "rootfs", "readonly": True}
        mounts = spec["mounts"]
        mounts += [
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            {"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]},
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
            },
            _bind(bundle / "shared", "/shared", ro=False),
        ]
        if views_from is not None:
            for rel, dst in VIEW_FILES.items():
                if views is None or rel in views or dst in views:
                    mounts.append(_bind(Path(views_from) / rel, dst))
        for src, dst in extra_mounts:
            mounts.append(_bind(src, dst))
        for src, dst in rw_mounts:
            mounts.append(_bind(src, dst, ro=False))
        if cgroup_rw:  # the container manages its own sub-cgroups (nested delegation)
            for m in mounts:
                if m["type"] == "cgroup":
                    m["options"] = [o for o in m["options"] if o != "ro"]
        for src, dst in rbind_mounts:  # with every mount below src, like docker's `-v /:/rootfs`
            mounts.append({"destination": dst, "type": "bind", "source": str(src), "options": ["rbind", "ro"]})
        resources = spec["linux"].setdefault("resources", {})
        mem = {}
        if memory is not None:
            mem["limit"] = int(memory)
        if memory_swap is not None:
            mem["swap"] = int(memory_swap)
        if mem:
            resources["memory"] = mem
        cpu = {}
        if cpu_quota is not None:
            cpu["quota"] = int(cpu_quota)
            cpu["period"] = int(cpu_period)
        if cpus is not None:
            cpu["cpus"] = cpus
        if cpu:
            resources["cpu"] = cpu
        if block_io:
            resources["blockIO"] = block_io
        for node in block_devices:
            rdev = os.stat(node).st_rdev
            major, minor = os.major(rdev), os.minor(rdev)
            spec["linux"].setdefault("devices", []).append(
                {"path": str(node), "type": "b", "major": major, "minor": minor, "fileMode": 0o660, "uid": 0, "gid": 0}
            )
            resources.setdefault("devices", []).append(
                {"allow": True, "type": "b", "major": major, "minor": minor, "access": "rw"}
            )
        if pids_limit is not None:
            resources["pids"] = {"limit": int(pids_limit)}
        if unified:
            resources["unified"] = dict(unified)
        spec["linux"]["cgroupsPath"] = cgroups_path
        if hooks:
            spec["hooks"] = hooks
        # Only this test's own daemons (their mountpoints are under tmp_path) give these
        # containers views: a packaged daemon watching every container declines them.
        spec["annotations"] = {"io.containerfs.mountpoint": f"{self.tmp_path}/*", **(annotations or {})}
        if seccomp is not None:
            spec["linux"]["seccomp"] = seccomp
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))

    def create(self, args=("sleep", "infinity"), *, name="c", detach=True, timeout=60, **options):
        """Create a container; options are _spec's keyword arguments:

        memory, memory_swap, cpu_quota, cpu_period, cpus: the OCI resources (bytes, us, list).
        env: extra environment entries ("KEY=value").
        views_from: a FUSE mountpoint (containerfs or lxcfs layout) whose eight files are
        bound over /proc/... and /sys/devices/system/cpu/online (None: no views).
        views: optional subset of VIEW_FILES keys to bind.
        extra_mounts: (host source, container destination) read-only binds.
        rbind_mounts: the same, recursive (the mounts below the source come along).
        block_devices: host block device nodes (/dev/loop5) the container may read and write.
        block_io: the OCI linux.resources.blockIO object (throttle rules, weights).
        hooks: the OCI "hooks" object (stage -> list of {path, args, env, timeout}).
        annotations: the OCI annotations.
        pids_limit: the container's pids.max.
        seccomp: the OCI linux.seccomp object.
        rw_mounts: (host source, container destination) read-write binds.
        cgroup_rw: mount /sys/fs/cgroup read-write (the container makes sub-cgroups).
        unified: cgroup v2 files to set ({"memory.high": "..."}, OCI linux.resources.unified).
        detach=True: start detached; use .exec()/.sh() and let teardown remove it.
        detach=False: run args to completion; .result is (rc, stdout, stderr).
        """
        uniq = SESSION + uuid.uuid4().hex[:8]
        cid = f"{PREFIX}-{uniq}-{name}"
        parent = f"/{PREFIX}-{uniq}"
        cgroups_path = f"{parent}/{name}"
        bundle = self.tmp_path / f"bundle-{name}-{uniq}"
        rootfs = bundle / "rootfs"
        for d in ("usr", "etc", "proc", "sys", "dev", "tmp", "shared"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            (rootfs / link).symlink_to(f"usr/{link}")
        (bundle / "shared").mkdir()
        os.chmod(bundle / "shared", 0o777)
        c = Container(cid, bundle, parent, cgroups_path, bundle / "shared")
        self.containers.append(c)
        self._spec(bundle, args, cgroups_path, **options)
        if detach:
            with open(bundle / "stdout.log", "wb") as out, open(bundle / "stderr.log", "wb") as err:
                p = subprocess.run(
                    [*self.runtime, "run", "--detach", cid],
                    cwd=bundle,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    timeout=scaled(timeout),
                )
            if p.returncode != 0:
                raise RuntimeError(
                    f"runc run --detach {cid} failed rc={p.returncode}: "
                    + (bundle / "stderr.log").read_text(errors="replace")
                )
        else:
            p = run([*self.runtime, "run", cid], timeout=timeout, cwd=bundle)
            c.result = (p.returncode, p.stdout, p.stderr)
        return c

    __call__ = create

    def one_shot(self, args, **kw):
        """Run args in a fresh container; returns (rc, stdout, stderr)."""
        return self.create(args, detach=False, **kw).result

    def cleanup(self):
        errors = []
        for c in reversed(self.containers):
            try:
                subprocess.run(["runc", "delete", "-f", c.id], capture_output=True, timeout=30)
            except Exception as exc:
                errors.append(f"runc delete {c.id}: {exc!r}")
            for hier in cgroup_hierarchies():
                d = hier / c.cgroup_parent.lstrip("/")
                try:
                    if d.exists() and not remove_cgroup_tree(d):
                        errors.append(f"cgroup {d} still present")
                except OSError as exc:
                    errors.append(f"rmdir {d}: {exc!r}")
        return errors


# --------------------------------------------------------------------------- helpers


def parse_meminfo(text):
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields:
            out[key.strip()] = int(fields[0])
    return out


def host_meminfo():
    return parse_meminfo(Path("/proc/meminfo").read_text())


def expected_swap_kb(memory, memory_swap):
    """v1: container swap = memsw limit - memory limit, never above the host's swap."""
    return min((memory_swap - memory) // 1024, host_meminfo().get("SwapTotal", 0))
