"""The real engines from Debian's packages (Docker, podman with runc and crun, LXC,
containerd's ctr) with their injection routes, and every kind of daemon restart.

Routes: `docker run $(containerfs docker-args)`, the watcher (`--watch --watch-include`
limited to this session's cgroups) for a plain `docker run` and for `ctr run --rootfs`,
podman's hooks.d with the packaged hook file, LXC's lxc.hook.mount with the packaged hook.
Each container has a 256 MiB limit and must see it in /proc/meminfo and `free -b`.

Restarts: kill -9 and start, `containerfs umount` and mount, a clean stop (SIGTERM) and
start -- each while a `docker run -v /:/rootfs` container and a host `unshare -m` shell
hold copies of the whole mountpoint.  After each: no containerfs mount of ours at "/" or
outside the view targets in any mount namespace, every container execs, and the views are
live again within 1 s of the new daemon serving.  The heal times are printed at the end.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cfs_harness import (
    REPO_ROOT,
    FuseDaemon,
    assert_no_stray_views,
    cgroup_hierarchies,
    containerfs_argv,
    force_unmount,
    free_total,
    parse_meminfo,
    skip_or_fail_in_ci,
)
from conftest import attach_log
from engines import (
    LIMIT,
    NAME,
    Engines,
    missing_engine_tools,
    mounts_under,
    processes_mentioning,
    sweep_dead_sessions,
    write_oci_hook,
)

from containerfs.procfs.mountinfo import parse_mountinfo

pytestmark = pytest.mark.integration

LIVE_WITHIN = 1.0  # seconds after the new daemon serves
UMOUNT_CONTAINERS = 20  # the umount restart also times the stop with this many containers
# (restart kind, container) -> (seconds from the start command, seconds from serving)
HEAL_TIMES: dict[tuple[str, str], tuple[float, float]] = {}


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def engines(request):
    """containerd and dockerd started for the session, with podman, LXC and ctr rooted in
    the same temporary directory; all torn down at the end, also after a failure or a SIGTERM."""
    missing = missing_engine_tools()
    if missing:
        skip_or_fail_in_ci("engine tools missing: " + ", ".join(missing))
    swept = sweep_dead_sessions()
    if swept:
        sys.stderr.write(f"\nremoved what killed engine sessions left: {swept}\n")
    previous = signal.signal(signal.SIGTERM, _interrupted)  # pytest tears down on KeyboardInterrupt
    eng = Engines()
    try:
        yield eng.start()
    finally:
        errors = eng.teardown()
        signal.signal(signal.SIGTERM, previous)
        report_heal_times(request.config)
        if errors:
            sys.stderr.write(f"\nengine teardown problems: {errors}\n")
        assert not errors, errors


def report_heal_times(config):
    """Print the heal times past pytest's output capture (they are the matrix's measurement)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not HEAL_TIMES:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line("heal times (s): restart kind, container: from the start command / from serving")
        for (kind, box), (from_start, from_ready) in sorted(HEAL_TIMES.items()):
            reporter.write_line(f"  {kind:10} {box:48} {from_start:6.3f} / {from_ready:6.3f}")


class Views:
    """The containerfs daemon under test: a temporary mountpoint and run dir, its watcher
    limited to this session's cgroups; restartable on the same mountpoint."""

    def __init__(self, request, root, label):
        self.request = request
        self.label = label
        self.mountpoint = Path(root) / f"mp-{label}"
        self.run_dir = Path(root) / f"run-{label}"
        self.log_path = Path(root) / f"containerfs-{label}.log"
        self.daemon = None
        self.generation = 0

    def cgroup(self, route):
        """The cgroup parent of this daemon's containers of one route."""
        return f"/{NAME}-{self.label}-{route}"

    def argv(self):
        # The watcher only ever looks at this daemon's watcher-route cgroups, never a neighbour's.
        watched = (self.cgroup("dwatch") + "/*", self.cgroup("ctr") + "/*", self.cgroup("pskip") + "/libpod-*")
        include = [arg for glob in watched for arg in ("--watch-include", glob)]
        return containerfs_argv(
            self.mountpoint, "--run-dir", str(self.run_dir), "--log-level", "DEBUG", "--watch", *include
        )

    def start(self):
        self.generation += 1
        with open(self.log_path, "a") as log:
            log.write(f"---- start {self.generation}\n")
        self.daemon = FuseDaemon("containerfs", self.argv(), self.mountpoint, self.log_path)
        if self.generation == 1:  # one log for every generation, each marked by its start line
            attach_log(self.request, f"containerfs log ({self.mountpoint})", self.log_path)
        self.daemon.start(timeout=20)
        return self

    def dev(self):
        return os.stat(self.mountpoint / "proc/meminfo").st_dev

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()


def cfs(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "containerfs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )


class Fleet:
    """One container per engine and route, a `-v /:/rootfs` container and a host
    `unshare -m` shell, all on one daemon's mountpoint."""

    def __init__(self, engines, views):
        self.engines = engines
        self.views = views
        self.boxes = {}
        self.shell = None

    def launch(self, extra=0):
        """extra: that many more `docker run $(containerfs docker-args)` containers."""
        eng, mp = self.engines, self.views.mountpoint
        hook_log = eng.root / f"oci-hook-{mp.name}.log"
        write_oci_hook(eng.hooks_dir, eng.bin / "containerfs", mp, hook_log)
        if self.views.request is not None and self.views.request.scope == "function":
            attach_log(self.views.request, "oci-hook log", hook_log)
            for key in ("containerd", "dockerd"):
                attach_log(self.views.request, f"{key} log (whole session)", eng.root / f"{key}.log")
        args = cfs("docker-args", "--mountpoint", mp)
        assert args.returncode == 0, args.stderr
        dargs = args.stdout.split()
        self.boxes["docker/docker-args"] = eng.docker_run(
            "dargs", *dargs, route="docker-args", cgroup_parent=self.views.cgroup("dargs")
        )
        self.boxes["docker/-v /:/rootfs"] = eng.docker_run(
            "rootfs", *dargs, "-v", "/:/rootfs", route="docker-args", cgroup_parent=self.views.cgroup("dargs")
        )
        self.boxes["docker/watcher"] = eng.docker_run(
            "dwatch", route="watcher", cgroup_parent=self.views.cgroup("dwatch")
        )
        self.boxes["podman-runc/hooks.d"] = eng.podman_run("prunc", "runc", cgroup_parent=self.views.cgroup("podman"))
        self.boxes["podman-crun/hooks.d"] = eng.podman_run("pcrun", "crun", cgroup_parent=self.views.cgroup("podman"))
        self.boxes["lxc/lxc.hook.mount"] = eng.lxc_run("lxc", REPO_ROOT / "packaging/lxc/containerfs-mount-hook", mp)
        self.boxes["ctr/watcher"] = eng.ctr_run("ctr", cgroup_parent=self.views.cgroup("ctr"))
        for n in range(extra):
            self.boxes[f"docker/docker-args #{n + 2}"] = eng.docker_run(
                "extra", *dargs, route="docker-args", cgroup_parent=self.views.cgroup("dargs")
            )
        # A host shell in its own mount namespace: a private copy of the whole mountpoint.
        self.shell = eng.host_shell()
        return self

    def namespaces(self):
        """The mount namespaces this fleet owns: its containers' and its shell's."""
        out = set()
        pids = [box.pid() for box in self.boxes.values()]
        if self.shell is not None:
            pids.append(self.shell.pid)
        for pid in pids:
            with contextlib.suppress(OSError):
                out.add(os.readlink(f"/proc/{pid}/ns/mnt"))
        # crun's conmon lives in the private namespace its podman ran in.
        for key in ("podman-crun/hooks.d", "podman-runc/hooks.d"):
            box = self.boxes.get(key)
            if box is None:
                continue
            conmon = self.engines.podman("inspect", "-f", "{{.State.ConmonPid}}", box.name, check=False).stdout.strip()
            if conmon.isdigit():
                with contextlib.suppress(OSError):
                    out.add(os.readlink(f"/proc/{conmon}/ns/mnt"))
        return out

    def teardown(self):
        errors = []
        for box in self.boxes.values():
            try:
                err = self.engines.remove(box)
            except Exception as exc:
                err = f"{box}: {exc!r}"
            if err:
                errors.append(err)
        if self.shell is not None:
            self.shell.kill()
            self.shell.wait(timeout=10)
        return errors


def view_live(box, views, dev):
    """The container reads meminfo from the daemon with superblock dev, and every view
    mounted in it is that daemon's (none is left over from the one before).

    Looked at from the host (/proc/PID/root, /proc/PID/mountinfo), so no exec per poll: the
    path walk follows the container's own mount table."""
    root = f"/proc/{box.pid()}/root/"
    try:
        if os.stat(root + "proc/meminfo").st_dev != dev:
            return False
        with open(root + "proc/meminfo", "rb") as f:
            if not f.read(64):
                return False
        views_in = [m for m in own_mounts(box, views) if m.root != "/"]  # "/": a whole copy
    except OSError:
        return False
    return all(m.dev == f"{os.major(dev)}:{os.minor(dev)}" for m in views_in)


def own_mounts(box, views):
    """This daemon's mounts in the container's mount table, as its init sees them."""
    with open(f"/proc/{box.pid()}/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    return [m for m in mounts if m.fstype == "fuse.containerfs" and m.source == f"containerfs:{views.mountpoint}"]


def wait_live(boxes, views, timeout):
    """Poll every container until its views are live; returns {key: monotonic time} (None: never)."""
    dev = views.dev()
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(boxes) and time.monotonic() < deadline:
        for key, box in boxes.items():
            if key not in done and view_live(box, views, dev):
                done[key] = time.monotonic()
        time.sleep(0.02)
    return {key: done.get(key) for key in boxes}


def describe(boxes, live):
    """For a failure message: each container that is not live, with its containerfs mounts."""
    out = []
    for key, at in live.items():
        if at is not None:
            continue
        box = boxes[key]
        try:
            with open(f"/proc/{box.pid()}/mountinfo") as f:
                mounts = [line.strip() for line in f if "containerfs" in line]
        except OSError as exc:
            mounts = [repr(exc)]
        out.append(f"{key} (pid {box.pid()}):\n  " + "\n  ".join(mounts or ["no containerfs mount"]))
    return "\n".join(out)


def misplaced_views(boxes, views):
    """The strict form of the invariant inside our own running containers (their mount
    tables as their init sees them): a mount of ours is something the daemon serves
    (a file, or the cpu directory bound whole) at exactly its own target, or a copy of the
    whole mountpoint away from "/"; and no view is stacked twice."""
    problems = []
    for key, box in boxes.items():
        try:
            mounts = own_mounts(box, views)
        except OSError as exc:
            problems.append(f"{key}: cannot read its mount table: {exc}")
            continue
        at = []
        for m in mounts:
            if m.root == "/" and m.mountpoint != "/":
                continue  # a copy of the whole mountpoint (the -v /:/rootfs container)
            served = m.root.startswith(("/proc/", "/sys/")) and os.path.exists(f"{views.mountpoint}{m.root}")
            if not served or m.mountpoint != m.root:
                problems.append(f"{key}: a containerfs mount of {m.root!r} at {m.mountpoint!r}")
            at.append(m.mountpoint)
        stacked = sorted({w for w in at if at.count(w) > 1})
        if stacked:
            problems.append(f"{key}: views stacked at {stacked}")
    return problems


def memtotal(box, reader=("head", "-n", "1000")):
    """MemTotal in bytes as the container reads /proc/meminfo (busybox head: plain reads)."""
    p = box.exec(*reader, "/proc/meminfo")
    assert p.returncode == 0, f"{box}: {reader} /proc/meminfo: {p.stderr}"
    return parse_meminfo(p.stdout).get("MemTotal", 0) * 1024


@pytest.fixture
def fleet(engines, request):
    """A fresh daemon and a fresh fleet: a broken restart never leaks into the next test."""
    label = request.node.name.split("[")[-1].rstrip("]") if "[" in request.node.name else "routes"
    views = Views(request, engines.root, label)
    fleet = Fleet(engines, views)
    errors = []
    try:
        views.start()
        # The umount test measures the stop with 20 containers, as the issue asks.
        fleet.launch(extra=UMOUNT_CONTAINERS - 7 if label == "umount" else 0)
        yield fleet
    finally:
        errors += fleet.teardown()
        fleet.views.stop()
        force_unmount(views.mountpoint)
    assert not errors, errors


@pytest.fixture(scope="module")
def route_fleet(engines, request):
    views = Views(request, engines.root, "routes")
    fleet = Fleet(engines, views)
    try:
        views.start()
        fleet.launch()
        fleet.first_live = wait_live(fleet.boxes, views, timeout=10)
        yield fleet
    finally:
        fleet.teardown()
        views.stop()


ROUTES = [
    "docker/docker-args",
    "docker/-v /:/rootfs",
    "docker/watcher",
    "podman-runc/hooks.d",
    "podman-crun/hooks.d",
    "lxc/lxc.hook.mount",
    "ctr/watcher",
]


@pytest.mark.parametrize("key", ROUTES)
def test_route_gives_the_container_its_limit(route_fleet, key):
    box = route_fleet.boxes[key]
    assert route_fleet.first_live[key] is not None, (
        f"{box}: no live containerfs view at /proc/meminfo within 10 s:\n{route_fleet.views.log_path.read_text()}"
    )
    assert misplaced_views({key: box}, route_fleet.views) == []
    assert memtotal(box) == LIMIT
    p = box.exec("free", "-b")
    assert p.returncode == 0, p.stderr
    assert free_total(p.stdout) == LIMIT


def test_busybox_cat_reads_the_view(route_fleet):
    """busybox cat copies with sendfile(2), which stops at st_size: the view must not look empty."""
    assert memtotal(route_fleet.boxes["docker/docker-args"], reader=("cat",)) == LIMIT


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_podman_opt_out_annotation_keeps_hook_and_watcher_out(route_fleet, runtime):
    """io.containerfs.skip=true: the hooks.d hook and the watcher (its cgroup is watched; the
    annotation is in the bundle the runc/crun state names) both leave the container alone."""
    eng, views = route_fleet.engines, route_fleet.views
    box = eng.podman_run(
        f"skip{runtime}", runtime, "--annotation", "io.containerfs.skip=true", cgroup_parent=views.cgroup("pskip")
    )
    try:
        time.sleep(2.5)  # the watcher scans every second and on every new cgroup
        with open(f"/proc/{box.pid()}/mountinfo") as f:
            ours = [line.strip() for line in f if f"containerfs:{views.mountpoint}" in line]
        assert ours == [], f"{box} opted out but has views: {ours}"
        p = box.exec("free", "-b")
        assert p.returncode == 0, p.stderr
        assert free_total(p.stdout) != LIMIT
    finally:
        eng.remove(box)


def _keep_own_records(run_dir, own_namespaces):
    """Neighbours' safety: drop from the clean-stop record every namespace this test does
    not own (another session's `unshare -m` made while our mount existed holds a copy of it).
    Ours stay, so the restart is tested as it is."""
    dropped = []
    for path in Path(run_dir).glob("*.json"):
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(entries, list):
            continue
        keep = [e for e in entries if not isinstance(e, dict) or e.get("mnt_ns", None) in own_namespaces]
        if len(keep) != len(entries):
            dropped += [e for e in entries if e not in keep]
            path.write_text(json.dumps(keep))
    return dropped


RESTARTS = ["kill-9", "umount", "clean-stop"]


@pytest.mark.parametrize("kind", RESTARTS)
def test_restart_heals_every_engine(fleet, kind):
    views, boxes = fleet.views, fleet.boxes
    first = wait_live(boxes, views, timeout=10)
    assert all(first.values()), "views not live before the restart:\n" + describe(boxes, first)
    own = fleet.namespaces()
    problems = []

    old = views.daemon
    if kind == "kill-9":
        old.proc.kill()
        old.proc.wait(timeout=10)
    elif kind == "clean-stop":
        old.proc.send_signal(signal.SIGTERM)
        try:
            old.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            problems.append("the daemon did not exit within 20 s of SIGTERM")
            old.proc.kill()
            old.proc.wait(timeout=10)
    else:
        started = time.monotonic()
        result = cfs("umount", "--run-dir", views.run_dir, views.mountpoint, timeout=60)
        if result.returncode != 0:
            problems.append(f"containerfs umount rc={result.returncode}: {result.stderr.strip()}")
        try:
            old.proc.wait(timeout=1)
            HEAL_TIMES[(kind, f"umount to daemon exit, {len(boxes)} containers")] = (time.monotonic() - started, 0.0)
        except subprocess.TimeoutExpired:
            # Starting a new daemon next to a live old one is what once mounted over the
            # host's "/": never here.  kill -9 writes no record.
            problems.append("the daemon still runs after `containerfs umount` returned")
            old.proc.kill()
            old.proc.wait(timeout=10)
    dropped = _keep_own_records(views.run_dir, own)
    if dropped:
        sys.stderr.write(f"dropped foreign namespaces from the record: {dropped}\n")

    started = time.monotonic()
    views.start()
    ready = time.monotonic()
    live = wait_live(boxes, views, timeout=LIVE_WITHIN + 4)
    for key, at in live.items():
        if at is None:
            problems.append(f"{key}: views not live {LIVE_WITHIN + 4:.0f} s after the new daemon served")
            continue
        name = key.split(" #")[0]
        if same_route := sum(k.split(" #")[0] == name for k in boxes) - 1:
            name += f" (slowest of {same_route + 1})"
        previous = HEAL_TIMES.get((kind, name), (0.0, 0.0))
        HEAL_TIMES[(kind, name)] = max(previous, (at - started, at - ready))
        # The 1 s bound is the matrix's (one container per engine and route).  The umount
        # test's extra docker-args containers are there to time the stop with 20: their heal
        # is timed and reported (HEAL_TIMES), and must come within the window above.
        if at - ready > LIVE_WITHIN and " #" not in key:
            problems.append(f"{key}: views live only {at - ready:.2f} s after the new daemon served")

    try:
        assert_no_stray_views(views.mountpoint)
    except AssertionError as exc:
        problems.append(str(exc))
    problems += misplaced_views(boxes, views)
    for key, box in boxes.items():
        p = box.exec("ls", "/")
        if p.returncode != 0:
            problems.append(f"{key}: exec `ls /` failed rc={p.returncode}: {p.stderr.strip()[:300]}")
            continue
        p = box.exec("free", "-b")
        total = free_total(p.stdout) if p.returncode == 0 else None
        if total != LIMIT:
            problems.append(f"{key}: `free -b` total {total} after the restart, want {LIMIT}: {p.stderr.strip()[:200]}")
    assert not problems, "\n".join(problems)


def test_a_killed_sessions_leftovers_are_swept(engines, tmp_path):
    """A test process killed outright runs no teardown: the next session's sweep removes its
    engines, containers, host shell, cgroups, mounts and root."""
    here = Path(__file__).resolve().parent
    script = (
        f"import os, signal, sys; sys.path.insert(0, {str(here)!r}); import engines\n"
        "e = engines.Engines().start()\n"
        "e.ctr_run('victim'); e.docker_run('victim', route='none'); e.host_shell()\n"
        "print(e.root, engines.NAME, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = tmp_path / "victim.out"
    with open(out, "w") as f:  # a file, not a pipe: what it leaves running would hold a pipe open
        p = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=f, timeout=180, cwd=REPO_ROOT)
    assert p.returncode == -signal.SIGKILL, out.read_text()
    root, name = out.read_text().split()[-2:]
    assert engine_leftovers(root, name), "the killed session left nothing: the sweep is not tested"
    assert root in sweep_dead_sessions()
    assert engine_leftovers(root, name) == []


def engine_leftovers(root, name):
    """What a session with this root and name still has on the machine."""
    found = [f"process {pid}" for pid in processes_mentioning(root)]
    found += [str(d) for hier in cgroup_hierarchies() for d in hier.glob(f"{name}-*")]
    found += mounts_under(root) if os.path.exists(root) else []
    found += [root] if os.path.exists(root) else []
    return found
