"""Real container engines for the integration tests, started by the suite itself.

No systemd here: containerd and dockerd run in the background with their own roots, state,
exec roots and sockets; podman keeps its storage and run state in the same temporary
directory; LXC uses it as its lxcpath; ctr talks to the suite's containerd.  Nothing lands
in /var/lib/{docker,containerd,containers,lxc}.  Everything is named ``cfseng-<session>``
(containers, cgroup parents, the ctr namespace), so teardown only ever touches what this
session created: it removes the containers, stops the engines by pid, kills what is left in
its cgroups, unmounts what the engines left under the temporary directory, removes the
cgroups and deletes the directory (Engines.teardown, also after a failure or a SIGTERM).
A session killed outright (SIGKILL) is swept by the next one (sweep_dead_sessions).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cfs_harness import REPO_ROOT, SESSION, cgroup_hierarchies, remove_cgroup_tree

NAME = f"cfseng-{SESSION}"
ENGINE_TOOLS = ("containerd", "dockerd", "ctr", "podman", "crun", "runc", "lxc-create", "unshare", "busybox")
DOCKER = shutil.which("docker", path="/usr/bin") or "docker"  # the docker.io client, not a newer one in PATH
PROCPS_TOOLS = ("free", "top", "uptime")
# Container memory limit: every view test checks MemTotal against it.
LIMIT = 256 * 1024 * 1024
# Directories the engines create on the host whatever their roots: containerd 1.6 its shims'
# sockets, dockerd its plugin directory, podman its network run directory, LXC its locks.
HOST_RUN_DIRS = (
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd/runc",
    "/run/containerd",
    "/run/docker/plugins",
    "/run/docker",
    "/run/containers/networks",
    "/run/containers",
    "/run/lxc/lock/tmp",
    "/run/lxc/lock",
    "/run/lxc",
)
# Mounts a `podman` run by crun must not see: crun refuses a hybrid layout's cgroup2 tree.
UNIFIED = "/sys/fs/cgroup/unified"


def missing_engine_tools():
    return [tool for tool in ENGINE_TOOLS if shutil.which(tool) is None]


def run(argv, timeout=120, check=True, env=None):
    p = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv} failed rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def build_rootfs(dest):
    """A tiny image: busybox-static with its applets, plus procps's free/top/uptime and the
    libraries they load (ldd), ~8 MB, built offline from the host's packages."""
    dest = Path(dest)
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("busybox"), dest / "bin/busybox")
    for applet in ("sh", "ls", "cat", "sleep", "echo", "grep", "head", "ps", "mount", "true", "stat"):
        (dest / "bin" / applet).symlink_to("busybox")
    for tool in PROCPS_TOOLS:
        binary = shutil.which(tool)
        shutil.copy2(binary, dest / "bin" / tool)
        for lib in _libraries(binary):
            target = dest / lib.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copy2(lib, target)
    (dest / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (dest / "etc/group").write_text("root:x:0:\n")
    return dest


def _libraries(binary):
    out = run(["ldd", binary]).stdout
    return [word for line in out.splitlines() for word in line.split() if word.startswith("/")]


def processes_mentioning(text):
    """Pids whose command line names text (our temporary root): shims, conmon, monitors."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def mounts_under(root):
    """Mount points in our own mount table at or below root, deepest first."""
    root = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            where = line.split()[4].encode().decode("unicode_escape")
            if where == root or where.startswith(root + "/"):
                found.append(where)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def stop_process(proc, timeout=15.0):
    """SIGTERM, wait, then SIGKILL: for the engine daemons we started (our children)."""
    if proc.poll() is not None:
        return None
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return f"pid {proc.pid} ({proc.args[0]}) ignored SIGTERM for {timeout:.0f} s"
    return None


class Box:
    """One container of one engine, with how to exec in it and where its init is."""

    def __init__(self, engines, engine, name, route):
        self.engines = engines
        self.engine = engine  # docker, podman-runc, podman-crun, lxc, ctr
        self.name = name
        self.route = route
        self.init_pid = None

    def __repr__(self):
        return f"<{self.engine} {self.name} via {self.route}>"

    def exec(self, *argv, timeout=60):
        # ctr passes no PATH: every image here keeps its tools in /bin.
        argv = (argv[0] if "/" in argv[0] else f"/bin/{argv[0]}", *argv[1:])
        return run(self.engines.exec_argv(self, argv), timeout=timeout, check=False)

    def pid(self):
        if self.init_pid is None:
            self.init_pid = self.engines.init_pid(self)
        return self.init_pid


class Engines:
    """containerd + dockerd (running), podman, LXC and ctr, all rooted at self.root."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix=f"{NAME}-", dir="/tmp"))
        self.rootfs = self.root / "rootfs"
        self.bin = self.root / "bin"  # a `containerfs` for hooks that call it from PATH
        self.hooks_dir = self.root / "hooks.d"
        self.lxcpath = self.root / "lxc"
        self.sock = self.root / "containerd.sock"
        self.docker_sock = self.root / "docker.sock"
        self.procs = {}
        self.boxes = []
        self.env = dict(os.environ, DOCKER_CONFIG=str(self.root / "docker-client"), TMPDIR=str(self.root / "tmp"))
        self._host_dirs_before = {d for d in HOST_RUN_DIRS if os.path.exists(d)}
        self._started = time.time()
        self.image = f"local/{NAME}:1"
        # Only the suite's own daemons (their mountpoints are under root) give these
        # containers views: a packaged daemon watching every container leaves them alone.
        self.ours = f"CONTAINERFS_VIEWS_FROM={self.root}/*"
        (self.root / "owner.pid").write_text(str(os.getpid()))  # for sweep_dead_sessions

    # ----------------------------------------------------------------- start

    def start(self):
        for d in ("tmp", "hooks.d", "lxc", "bin", "fifo", "podman", "docker-client"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "docker-client/config.json").write_text("{}")  # podman reads it too
        build_rootfs(self.rootfs)
        self._write_containerfs_shim()
        self._start_containerd()
        self._start_dockerd()
        self._import_image()
        return self

    def _import_image(self):
        with subprocess.Popen(["tar", "-C", str(self.rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            p = subprocess.run(
                [DOCKER, "-H", f"unix://{self.docker_sock}", "import", "-", self.image],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=120,
            )
        if p.returncode != 0:
            raise RuntimeError(f"docker import failed: {p.stderr}")

    def _write_containerfs_shim(self):
        shim = self.bin / "containerfs"
        shim.write_text(f'#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m containerfs "$@"\n')
        shim.chmod(0o755)

    def _spawn(self, key, argv):
        with open(self.root / f"{key}.log", "ab") as log:
            self.procs[key] = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )

    def _wait_for(self, key, probe, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[key].poll() is not None:
                raise RuntimeError(f"{key} exited rc={self.procs[key].returncode}:\n{self.log(key)[-3000:]}")
            if probe():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{key} not ready within {timeout}s:\n{self.log(key)[-3000:]}")

    def log(self, key):
        try:
            return (self.root / f"{key}.log").read_text(errors="replace")
        except OSError:
            return ""

    def _start_containerd(self):
        r = self.root / "containerd"
        config = self.root / "containerd.toml"
        # Its own root, state and sockets; the CRI plugin (a network stack) and the
        # snapshotters this kernel has no use for are off.
        config.write_text(
            f"""version = 2
root = "{r}/root"
state = "{r}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"
"""
        )
        self._spawn("containerd", ["containerd", "--config", config])
        self._wait_for("containerd", lambda: self.ctr("version", check=False).returncode == 0)

    def _start_dockerd(self):
        (self.root / "daemon.json").write_text("{}")  # not the host's /etc/docker/daemon.json
        d = self.root / "docker"
        self._spawn(
            "dockerd",
            [
                "dockerd",
                "--config-file",
                self.root / "daemon.json",
                "--data-root",
                d / "data",
                "--exec-root",
                d / "exec",
                "--pidfile",
                d / "dockerd.pid",
                "--containerd",
                self.sock,
                "-H",
                f"unix://{self.docker_sock}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--cgroup-parent",
                f"/{NAME}-docker",
            ],
        )
        self._wait_for("dockerd", lambda: self.docker("version", check=False).returncode == 0)

    # ----------------------------------------------------------------- clients

    def docker(self, *args, check=True, timeout=120):
        return run([DOCKER, "-H", f"unix://{self.docker_sock}", *args], env=self.env, check=check, timeout=timeout)

    def ctr(self, *args, check=True, timeout=120):
        return run(["ctr", "--address", self.sock, "-n", NAME, *args], env=self.env, check=check, timeout=timeout)

    def podman_argv(self, runtime, *args):
        p = self.root / "podman"
        argv = [
            "podman",
            "--root",
            p / "root",
            "--runroot",
            p / "runroot",
            "--tmpdir",
            p / "tmp",
            "--volumepath",
            p / "volumes",
            "--network-config-dir",
            p / "net",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--hooks-dir",
            self.hooks_dir,
            *args,
        ]
        if runtime == "crun" and _is_cgroup2_mount(UNIFIED):
            # crun refuses a hybrid layout while it sees the empty cgroup2 tree: hide it in a
            # private mount namespace of this command only (the host's stays as it is).
            script = f'umount -l {UNIFIED} && exec "$@"'
            return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]
        return argv

    def podman(self, *args, runtime="runc", check=True, timeout=120):
        return run(self.podman_argv(runtime, *args), env=self.env, check=check, timeout=timeout)

    def lxc(self, tool, name, *args, check=True, timeout=120, env=None):
        return run([tool, "-P", self.lxcpath, "-n", name, *args], env=env or self.env, check=check, timeout=timeout)

    # ----------------------------------------------------------------- containers

    def unique(self, label):
        return f"{NAME}-{label}-{uuid.uuid4().hex[:6]}"

    def docker_run(self, label, *options, route, cgroup_parent=None):
        box = Box(self, "docker", self.unique(label), route)
        self.boxes.append(box)
        parent = cgroup_parent or f"/{NAME}-docker"
        self.docker(
            "run",
            "-d",
            "--name",
            box.name,
            "--network",
            "none",
            "--memory",
            str(LIMIT),
            "--cgroup-parent",
            parent,
            "--env",
            self.ours,
            *options,
            self.image,
            "/bin/sleep",
            "1000000",
        )
        return box

    def podman_run(self, label, runtime, *options, route="hooks.d", cgroup_parent=None):
        box = Box(self, f"podman-{runtime}", self.unique(label), route)
        self.boxes.append(box)
        rootfs = self.root / f"rootfs-{box.name}"
        shutil.copytree(self.rootfs, rootfs, symlinks=True)
        self.podman(
            "run",
            "-d",
            "--name",
            box.name,
            "--runtime",
            runtime,
            "--network",
            "none",
            "--memory",
            str(LIMIT),
            "--cgroup-parent",
            cgroup_parent or f"/{NAME}-podman",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "--env",
            self.ours,
            *options,
            "--rootfs",
            rootfs,
            "/bin/sleep",
            "1000000",
            runtime=runtime,
        )
        return box

    def lxc_template(self):
        """A busybox-template container, created once and never started: lxc_run copies it."""
        name = f"{NAME}-template"
        path = self.lxcpath / name
        if not path.exists():
            self.lxc("lxc-create", name, "-t", "busybox", "--", "--busybox-path", shutil.which("busybox"))
            rootfs = path / "rootfs"
            # The template's busybox copy is not always the static one; and procps's free is
            # the tool under test (the template binds the host's /lib and /usr/lib for it).
            for f in ("bin/busybox", "sbin/init"):
                (rootfs / f).unlink(missing_ok=True)
            shutil.copy2(shutil.which("busybox"), rootfs / "bin/busybox")
            for tool in PROCPS_TOOLS:
                (rootfs / "bin" / tool).unlink(missing_ok=True)
                shutil.copy2(shutil.which(tool), rootfs / "bin" / tool)
        return path

    def lxc_run(self, label, hook, mountpoint):
        """A busybox-template container whose lxc.hook.mount is hook (LXC runs it with
        LXC_ROOTFS_MOUNT set, in the container's mount namespace, before pivot_root)."""
        box = Box(self, "lxc", self.unique(label), "lxc.hook.mount")
        self.boxes.append(box)
        # lxc-create's template takes seconds: it runs once, its result is copied.
        template = self.lxc_template()
        shutil.copytree(template, self.lxcpath / box.name, symlinks=True)
        config = self.lxcpath / box.name / "config"
        own = ("lxc.net.0.", "lxc.rootfs.path", "lxc.uts.name", "lxc.apparmor.")
        lines = [line for line in config.read_text().splitlines() if not line.startswith(own)]
        v2 = _is_cgroup2_mount("/sys/fs/cgroup")  # LXC takes only the keys of the host's layout
        lines += [
            f"lxc.rootfs.path = dir:{self.lxcpath / box.name / 'rootfs'}",
            f"lxc.uts.name = {box.name}",
            "lxc.net.0.type = empty",
            # The template's generated profile needs AppArmor's tools; ignored without AppArmor.
            "lxc.apparmor.profile = unconfined",
            "lxc.init.cmd = /bin/sleep 1000000",
            f"lxc.environment = {self.ours}",
            f"lxc.cgroup2.memory.max = {LIMIT}" if v2 else f"lxc.cgroup.memory.limit_in_bytes = {LIMIT}",
            f"lxc.hook.mount = {hook}",
        ]
        config.write_text("\n".join(lines) + "\n")
        # The packaged hook finds the daemon's mountpoint and its containerfs in its environment,
        # which LXC hands down from lxc-start.
        env = dict(
            self.env,
            CONTAINERFS_MOUNTPOINT=str(mountpoint),
            CONTAINERFS=str(self.bin / "containerfs"),
            PATH=f"{self.bin}:{os.environ['PATH']}",
        )
        self.lxc("lxc-start", box.name, "-l", "INFO", "-o", self.lxcpath / f"{box.name}.log", env=env)
        state = self.lxc("lxc-wait", box.name, "-s", "RUNNING", "-t", "10", check=False)
        if state.returncode != 0:
            raise RuntimeError(f"lxc {box.name} not running: {(self.lxcpath / f'{box.name}.log').read_text()}")
        return box

    def ctr_run(self, label, *, route="watcher", cgroup_parent=None):
        box = Box(self, "ctr", self.unique(label), route)
        self.boxes.append(box)
        rootfs = self.root / f"rootfs-{box.name}"
        shutil.copytree(self.rootfs, rootfs, symlinks=True)
        self.ctr(
            "run",
            "-d",
            "--fifo-dir",
            self.root / "fifo",
            "--memory-limit",
            str(LIMIT),
            "--cgroup",
            f"{cgroup_parent or f'/{NAME}-ctr'}/{box.name}",
            "--env",
            self.ours,
            "--rootfs",
            rootfs,
            box.name,
            "/bin/sleep",
            "1000000",
        )
        return box

    def host_shell(self):
        """A host `unshare -m` shell (a sleep): a private copy of every mount, ours included.

        It starts in a cgroup of ours, so that even a killed session's sweep finds it."""
        cgroup = self.shell_cgroup()
        cgroup.mkdir(exist_ok=True)

        def enter():
            (cgroup / "cgroup.procs").write_text("0")

        return subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sleep", "1000000"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=enter,
        )

    @staticmethod
    def shell_cgroup():
        hierarchy = Path("/sys/fs/cgroup/pids")
        if not hierarchy.is_dir():
            hierarchy = Path("/sys/fs/cgroup")  # v2: one tree
        return hierarchy / f"{NAME}-shells"

    def exec_argv(self, box, argv):
        if box.engine == "docker":
            return [DOCKER, "-H", f"unix://{self.docker_sock}", "exec", box.name, *argv]
        if box.engine.startswith("podman-"):
            return self.podman_argv("runc", "exec", box.name, *argv)
        if box.engine == "lxc":
            return ["lxc-attach", "-P", self.lxcpath, "-n", box.name, "--", *argv]
        if box.engine == "ctr":
            exec_id = "x" + uuid.uuid4().hex[:8]
            return [
                *("ctr", "--address", self.sock, "-n", NAME, "task", "exec", "--fifo-dir", self.root / "fifo"),
                *("--exec-id", exec_id, box.name, *argv),
            ]
        raise ValueError(box.engine)

    def init_pid(self, box):
        if box.engine == "docker":
            return int(self.docker("inspect", "-f", "{{.State.Pid}}", box.name).stdout)
        if box.engine.startswith("podman-"):
            return int(self.podman("inspect", "-f", "{{.State.Pid}}", box.name).stdout)
        if box.engine == "lxc":
            return int(self.lxc("lxc-info", box.name, "-pH").stdout)
        if box.engine == "ctr":
            for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
                fields = line.split()
                if fields and fields[0] == box.name:
                    return int(fields[1])
        raise RuntimeError(f"no init pid for {box}")

    def remove(self, box):
        """Remove one container; returns an error string or None."""
        if box in self.boxes:
            self.boxes.remove(box)
        if box.engine == "docker":
            p = self.docker("rm", "-f", box.name, check=False)
        elif box.engine.startswith("podman-"):
            p = self.podman("rm", "-f", "-t", "0", box.name, check=False)
        elif box.engine == "lxc":
            self.lxc("lxc-stop", box.name, "-k", check=False)
            p = self.lxc("lxc-destroy", box.name, "-f", check=False)
        else:
            self.ctr("task", "kill", "-s", "KILL", box.name, check=False)
            for _ in range(50):
                if self.ctr("task", "rm", "-f", box.name, check=False).returncode == 0:
                    break
                time.sleep(0.1)
            p = self.ctr("container", "rm", box.name, check=False)
        if p.returncode != 0 and "No such" not in p.stderr and "not found" not in p.stderr:
            return f"remove {box}: {p.stderr.strip()}"
        return None

    # ----------------------------------------------------------------- teardown

    def teardown(self):
        """Remove everything this instance created; returns what went wrong (never raises)."""
        errors = []

        def attempt(what, fn, *args):
            try:
                result = fn(*args)
                if result:
                    errors.append(result)
            except Exception as exc:
                errors.append(f"{what}: {exc!r}")

        for box in list(self.boxes):
            attempt(f"remove {box}", self.remove, box)
        if "dockerd" in self.procs:
            attempt("docker rm", lambda: self.docker("rm", "-f", *self._docker_ids(), check=False) and None)
        attempt("podman rm", lambda: self.podman("rm", "-a", "-f", "-t", "0", check=False) and None)
        for key in ("dockerd", "containerd"):
            if key in self.procs:
                attempt(f"stop {key}", stop_process, self.procs[key])
        try:
            errors += remove_root(self.root, NAME)
        except Exception as exc:
            errors.append(f"remove {self.root}: {exc!r}")
        for d in HOST_RUN_DIRS:  # deepest first; only empty ones this session brought in or used
            with contextlib.suppress(OSError):
                if d not in self._host_dirs_before or os.stat(d).st_mtime >= self._started:
                    os.rmdir(d)
        return errors

    def _docker_ids(self):
        return self.docker("ps", "-aq", check=False).stdout.split() or ["--"]


def remove_root(root, name):
    """What is left of one session once its engines are stopped (or were never stopped, when
    its test process was killed): every process that names its root (shims, conmon, LXC
    monitors), its cgroups and what runs in them, runtime state naming its root, its mounts,
    LXC's locks, the root itself.  Returns what could not be removed."""
    errors = []
    root = str(root)
    for pid in processes_mentioning(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    failed = _remove_cgroups(name)
    if failed:
        errors.append(f"cgroups left: {failed}")
    # podman's runc and crun keep their state in the host's default roots.
    for state in [*Path("/run/runc").glob("*/state.json"), *Path("/run/crun").glob("*/status")]:
        with contextlib.suppress(OSError):
            if root in state.read_text(errors="replace"):
                shutil.rmtree(state.parent, ignore_errors=True)
    for where in mounts_under(root):
        run(["umount", "-l", where], check=False)
    left = mounts_under(root)
    if left:
        errors.append(f"still mounted: {left}")
    shutil.rmtree(root, ignore_errors=True)
    if os.path.exists(root):
        errors.append(f"{root} not removed")
    # LXC locks each container under /run/lxc/lock/<lxcpath>; runc under containerd keeps
    # its state in /run/containerd/runc/<ctr namespace> (the runtimes' own place, where the
    # watcher looks for annotations).
    shutil.rmtree(f"/run/lxc/lock/{root.lstrip('/')}", ignore_errors=True)
    shutil.rmtree(f"/run/containerd/runc/{name}", ignore_errors=True)
    return errors


def _remove_cgroups(name):
    """Kill what is left in a session's cgroups (LXC's payload and monitor ones included),
    then remove them bottom-up in every hierarchy; returns those that stay."""
    failed = []
    patterns = (f"{name}-*", f"lxc.payload.{name}-*", f"lxc.monitor.{name}-*")
    for hier in cgroup_hierarchies():
        for pattern in patterns:
            for top in hier.glob(pattern):
                for cgroup, _, _ in os.walk(top):
                    try:
                        pids = (Path(cgroup) / "cgroup.procs").read_text().split()
                    except OSError:
                        continue
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError, ValueError):
                            os.kill(int(pid), signal.SIGKILL)
                if not remove_cgroup_tree(top):
                    failed.append(str(top))
    return failed


def sweep_dead_sessions():
    """Remove what sessions whose test process was killed outright (SIGKILL: no teardown)
    left: their roots are /tmp/cfseng-<session>-*, their owner's pid in owner.pid."""
    swept = []
    for owner in Path("/tmp").glob("cfseng-*/owner.pid"):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if os.path.exists(f"/proc/{pid}"):
            continue
        root = owner.parent
        remove_root(root, "-".join(root.name.split("-")[:2]))
        swept.append(str(root))
    if swept:
        # Its killed shims' sockets (containerd 1.6 keeps them in /run/containerd/s): those
        # nothing is bound to any more.
        with open("/proc/net/unix") as f:
            bound = {line.split()[-1] for line in f if line.count(" ") >= 7}
        for sock in Path("/run/containerd/s").glob("*"):
            if str(sock) not in bound:
                sock.unlink(missing_ok=True)
        # And the host directories it brought in, if nobody uses them now.
        for d in HOST_RUN_DIRS:
            with contextlib.suppress(OSError):
                os.rmdir(d)
    return swept


def _is_cgroup2_mount(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == path and right.split()[0] == "cgroup2":
                return True
    return False


def write_oci_hook(hooks_dir, containerfs, mountpoint, log_file):
    """The packaged hooks.d file (packaging/oci/containerfs.json), pointed at this
    session's containerfs and mountpoint; its stages and conditions stay as shipped."""
    spec = json.loads((REPO_ROOT / "packaging/oci/containerfs.json").read_text())
    args = spec["hook"]["args"]
    args[args.index("--mountpoint") + 1] = str(mountpoint)
    spec["hook"]["path"] = str(containerfs)
    spec["hook"]["args"] = [*args, "--log-file", str(log_file)]
    path = Path(hooks_dir) / "containerfs.json"
    path.write_text(json.dumps(spec))
    return path
