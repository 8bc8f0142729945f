"""containerfs-runtime: containers started through the wrapper get their views before the
first instruction and their own figures from sysinfo(2) (seccomp user notification)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cfs_harness import ContainerFactory, parse_meminfo

from containerfs.sysinfo.paths import holder_pid, sysinfo_paths

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
LIMIT = 160 * MIB
HOST_MEMTOTAL = parse_meminfo(Path("/proc/meminfo").read_text())["MemTotal"] * 1024
# struct sysinfo through ctypes: what glibc's getloadavg and sysconf read.
SYSINFO_PY = r"""
import ctypes, json, os
L = ctypes.c_ulong
class S(ctypes.Structure):
    _fields_ = [("uptime", ctypes.c_long), ("loads", L * 3), ("totalram", L), ("freeram", L),
                ("sharedram", L), ("bufferram", L), ("totalswap", L), ("freeswap", L),
                ("procs", ctypes.c_ushort), ("pad", ctypes.c_ushort), ("totalhigh", L),
                ("freehigh", L), ("mem_unit", ctypes.c_uint), ("_f", ctypes.c_char * 4)]
libc = ctypes.CDLL(None, use_errno=True)
s = S()
rc = libc.sysinfo(ctypes.byref(s))
err = ctypes.get_errno()
try:
    proc_loadavg = open("/proc/loadavg").read()
except OSError as e:  # a view of a daemon that was killed
    proc_loadavg = str(e)
try:
    loads = os.getloadavg()
except OSError as e:  # sysinfo failed
    loads = str(e)
print(json.dumps({"rc": rc, "errno": err, "uptime": s.uptime, "loads": list(s.loads),
    "totalram": s.totalram * s.mem_unit, "freeram": s.freeram * s.mem_unit, "procs": s.procs,
    "getloadavg": loads, "proc_loadavg": proc_loadavg}))
"""

# One call, timed, reading no file: a stopped daemon's views would block a read.
PROBE_PY = r"""
import ctypes, sys, time
buf = ctypes.create_string_buffer(112)
libc = ctypes.CDLL(None, use_errno=True)
address = ctypes.addressof(buf) if sys.argv[1] == "buffer" else int(sys.argv[1])
started = time.monotonic()
rc = libc.sysinfo(ctypes.c_void_p(address))
elapsed = time.monotonic() - started
print(rc, ctypes.get_errno(), round(elapsed, 3), int.from_bytes(buf.raw[32:40], "little"))
"""


class Setup:
    def __init__(self, daemon, run_dir):
        self.daemon = daemon
        self.run_dir = run_dir
        self.paths = sysinfo_paths(str(daemon.mountpoint), str(run_dir))

    def wrapper(self, runtime="runc", mountpoint=None):
        return [
            "env",
            f"CONTAINERFS_MOUNTPOINT={mountpoint or self.daemon.mountpoint}",
            f"CONTAINERFS_RUN_DIR={self.run_dir}",
            f"CONTAINERFS_RUNTIME={runtime}",
            "CONTAINERFS_RUNTIME_CONFIG=/nonexistent",
            sys.executable,
            "-m",
            "containerfs.runtime",
        ]


def stop_holder(paths):
    pid = holder_pid(paths)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and holder_pid(paths) == pid:
        time.sleep(0.05)
    if holder_pid(paths) == pid:
        os.kill(pid, signal.SIGKILL)


def wait_until(predicate, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    return last


@pytest.fixture
def setup(start_containerfs, tmp_path):
    daemon = start_containerfs()
    s = Setup(daemon, tmp_path / "run")
    try:
        assert wait_until(lambda: holder_pid(s.paths)), "the daemon started no sysinfo holder"
        yield s
    finally:
        daemon.stop()
        stop_holder(s.paths)


@pytest.fixture
def wrapped(setup, tmp_path):
    """Containers started through containerfs-runtime (runc)."""
    factory = ContainerFactory(tmp_path, runtime=setup.wrapper())
    try:
        yield factory
    finally:
        errors = factory.cleanup()
        if errors:
            pytest.fail("container cleanup: " + "; ".join(errors), pytrace=False)


def free_total(output):
    mem = next(line for line in output.splitlines() if line.startswith("Mem:"))
    return int(mem.split()[1])


def sysinfo_in(container):
    rc, out, err = container.exec("/usr/bin/python3", "-c", SYSINFO_PY)
    assert rc == 0, err
    return json.loads(out)


def config_of(container):
    return json.loads((container.bundle / "config.json").read_text())


def test_first_instruction_reads_the_limit(wrapped):
    rc, out, err = wrapped.one_shot(["head", "-n1", "/proc/meminfo"], memory=LIMIT)
    assert rc == 0, err
    assert int(out.split()[1]) * 1024 == LIMIT
    spec = config_of(wrapped.containers[-1])
    assert [h["args"][1] for h in spec["hooks"]["createRuntime"]] == ["oci-hook"]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"


def test_busybox_free_total_is_the_limit(wrapped):
    rc, out, err = wrapped.one_shot(["busybox", "free", "-b"], memory=LIMIT)
    assert rc == 0, err
    assert free_total(out) == LIMIT
    host = subprocess.run(["busybox", "free", "-b"], capture_output=True, text=True, check=True).stdout
    assert free_total(host) == HOST_MEMTOTAL  # the host keeps its own figures


def test_getconf_phys_pages_times_pagesize_is_the_limit(wrapped):
    script = "echo $(getconf _PHYS_PAGES) $(getconf PAGESIZE)"
    rc, out, err = wrapped.one_shot(["/bin/sh", "-c", script], memory=LIMIT)
    assert rc == 0, err
    pages, pagesize = map(int, out.split())
    assert pages * pagesize == LIMIT


def test_getloadavg_and_sysinfo_equal_the_views_under_a_busy_loop(wrapped):
    c = wrapped.create(["/bin/sh", "-c", "while :; do :; done"], memory=LIMIT)
    c.exec_detached("/bin/sh", "-c", "while :; do :; done")
    # Two busy tasks: the 1-minute average passes 0.3 after two 5 s samples.
    assert wait_until(lambda: float(c.sh("cut -d' ' -f1 /proc/loadavg")[1]) >= 0.3, timeout=30)
    for _ in range(5):
        got = sysinfo_in(c)
        fields = got["proc_loadavg"].split()
        # A sample may land between the two reads: retry rather than tolerate a difference.
        if [f"{v:.2f}" for v in got["getloadavg"]] == fields[:3]:
            break
        time.sleep(0.5)
    assert got["rc"] == 0
    assert [f"{v:.2f}" for v in got["getloadavg"]] == fields[:3], got
    assert got["procs"] == int(fields[3].split("/")[1]), got
    assert got["totalram"] == LIMIT
    up = float(c.sh("cut -d' ' -f1 /proc/uptime")[1])
    assert abs(got["uptime"] - up) <= 2, (got, up)


def test_gnu_sort_of_a_file_larger_than_the_limit_succeeds(wrapped, runc_container):
    limit = 96 * MIB
    # On disk (the bundle's shared directory), not tmpfs: tmpfs pages count as the container's memory.
    script = (
        "seq 1 4000000 | sed 's/$/ some padding to make lines longer/' > /shared/in"
        " && ls -l /shared/in && TMPDIR=/shared sort -r /shared/in -o /shared/out && wc -l < /shared/out"
    )
    options = {"memory": limit, "memory_swap": limit, "timeout": 600, "name": "sort"}
    rc, out, err = wrapped.one_shot(["/bin/sh", "-c", script], **options)
    assert rc == 0, (rc, out, err)
    assert int(out.split()[4]) > limit * 1.5
    assert out.split()[-1] == "4000000"
    # The same container without containerfs: sort sizes its buffer from the host's RAM.
    rc, out, err = runc_container.one_shot(["/bin/sh", "-c", script], **options)
    assert rc == 137, (rc, out, err)


def test_own_seccomp_profile_keeps_its_rules(wrapped):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    script = "mkdir /tmp/x; echo mkdir=$?; busybox free -b"
    rc, out, err = wrapped.one_shot(["/bin/sh", "-c", script], memory=LIMIT, seccomp=profile)
    assert rc == 0, err
    assert "mkdir=1" in out and "Operation not permitted" in err, (out, err)
    assert free_total(out) == LIMIT
    seccomp = config_of(wrapped.containers[-1])["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    assert seccomp["syscalls"][0] == profile["syscalls"][0]


def test_opt_out_annotation_is_honoured(wrapped):
    rc, out, err = wrapped.one_shot(
        ["/bin/sh", "-c", "head -n1 /proc/meminfo; busybox free -b"],
        memory=LIMIT,
        annotations={"io.containerfs.skip": "true"},
    )
    assert rc == 0, err
    assert int(out.split()[1]) * 1024 == HOST_MEMTOTAL
    assert free_total(out) == HOST_MEMTOTAL
    spec = config_of(wrapped.containers[-1])
    assert "seccomp" not in spec["linux"] and not spec.get("hooks")


def test_no_daemon_adds_nothing_and_says_why(setup, tmp_path):
    factory = ContainerFactory(tmp_path, runtime=setup.wrapper(mountpoint=tmp_path / "not-mounted"))
    try:
        rc, out, err = factory.one_shot(["/bin/sh", "-c", "head -n1 /proc/meminfo; busybox free -b"], memory=LIMIT)
        assert rc == 0, err
        assert free_total(out) == HOST_MEMTOTAL
        assert "no containerfs daemon serves" in err and "nothing added" in err, err
        spec = config_of(factory.containers[-1])
        assert "seccomp" not in spec["linux"] and not spec.get("hooks")
    finally:
        assert not factory.cleanup()


def test_killed_daemon_never_fails_sysinfo_and_a_restart_answers_again(setup, wrapped, start_containerfs):
    c = wrapped.create(memory=LIMIT)
    assert sysinfo_in(c)["totalram"] == LIMIT
    holder = holder_pid(setup.paths)
    setup.daemon.proc.kill()
    setup.daemon.proc.wait(timeout=10)
    got = sysinfo_in(c)
    assert (got["rc"], got["totalram"]) == (0, HOST_MEMTOTAL), got
    # busybox free also opens /proc/meminfo, whose view is dead (ENOTCONN) until the
    # restart heals it; busybox uptime calls only sysinfo.
    rc, out, err = c.exec("busybox", "uptime")
    assert rc == 0, err
    started = time.monotonic()
    start_containerfs(mountpoint=setup.daemon.mountpoint)  # the same run directory: the fixture default
    assert holder_pid(setup.paths) == holder  # the restarted daemon found the holder
    assert wait_until(lambda: sysinfo_in(c)["totalram"] == LIMIT, timeout=10)
    rc, out, err = c.exec("busybox", "free", "-b")
    assert rc == 0, err
    assert free_total(out) == LIMIT
    assert time.monotonic() - started < 10
    # Why the holder exists: with the listener's last descriptor gone, the kernel fails the
    # calls of every process that was started while that holder ran.
    waiter = 'while [ ! -e /shared/go ]; do sleep 0.05; done; exec python3 -c "$0" > /shared/result'
    c.exec_detached("/bin/sh", "-c", waiter, SYSINFO_PY)
    os.kill(holder, signal.SIGKILL)
    assert wait_until(lambda: holder_pid(setup.paths) != holder)
    (c.shared / "go").touch()
    assert wait_until(lambda: (c.shared / "result").exists() and (c.shared / "result").read_text())
    got = json.loads((c.shared / "result").read_text())
    assert (got["rc"], got["errno"]) == (-1, 38), got  # ENOSYS
    # The daemon starts a new holder: processes started from then on get answers again
    # (runc exec cannot start a process in the meantime: it must hand over a listener).
    assert wait_until(lambda: holder_pid(setup.paths) not in (None, holder), timeout=10)
    assert sysinfo_in(c)["totalram"] == LIMIT


def probe(container, address="buffer"):
    rc, out, err = container.exec("/usr/bin/python3", "-c", PROBE_PY, address)
    assert rc == 0, err
    result, errno_, elapsed, totalram = out.split()
    return int(result), int(errno_), float(elapsed), int(totalram)


def test_bad_buffers_get_the_kernels_efault(wrapped):
    c = wrapped.create(memory=LIMIT)
    assert probe(c)[0::3] == (0, LIMIT)
    for address in ("0", "1", str(1 << 47)):
        rc, errno_, _, _ = probe(c, address)
        assert (rc, errno_) == (-1, 14), address  # EFAULT, as without containerfs


def test_a_stopped_daemon_delays_sysinfo_only_briefly(setup, wrapped):
    c = wrapped.create(memory=LIMIT)
    os.kill(setup.daemon.proc.pid, signal.SIGSTOP)
    try:
        rc, _, elapsed, totalram = probe(c)
    finally:
        os.kill(setup.daemon.proc.pid, signal.SIGCONT)
    # The holder waits 0.5 s for the daemon, then lets the kernel answer.
    assert (rc, totalram) == (0, HOST_MEMTOTAL)
    assert 0.4 <= elapsed < 2.0, elapsed
    assert probe(c)[3] == LIMIT


def test_crun_through_the_wrapper(setup, tmp_path):
    # crun refuses this hybrid host's empty cgroup2 tree: hide it in a private mount namespace.
    hide = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'umount /sys/fs/cgroup/unified; exec "$@"', "-"]
    factory = ContainerFactory(tmp_path, runtime=hide + setup.wrapper(runtime="crun"))
    try:
        rc, out, err = factory.one_shot(["/bin/sh", "-c", "head -n1 /proc/meminfo; busybox free -b"], memory=LIMIT)
        assert rc == 0, err
        assert int(out.split()[1]) * 1024 == LIMIT
        assert free_total(out) == LIMIT
    finally:
        assert not factory.cleanup()


@pytest.fixture(scope="module")
def docker_engine():
    """containerd and dockerd started by the suite (engines.py), for this module's Docker test."""
    from engines import Engines, missing_engine_tools

    missing = missing_engine_tools()
    if missing:
        msg = "engine tools missing: " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    engine = Engines()
    try:
        yield engine.start()
    finally:
        errors = engine.teardown()
        assert not errors, errors


def runtime_script(setup, tmp_path):
    """The wrapper as one executable: engines run a runtime by path, with their own environment."""
    script = tmp_path / "containerfs-runtime"
    exports = " ".join(setup.wrapper()[1:5])
    script.write_text(f'#!/bin/sh\nexport {exports}\nexec {sys.executable} -m containerfs.runtime "$@"\n')
    script.chmod(0o755)
    return script


def test_docker_with_the_wrapper_as_runtime(setup, docker_engine, tmp_path):
    from engines import LIMIT as DOCKER_LIMIT
    from engines import NAME

    script = runtime_script(setup, tmp_path)
    config = docker_engine.root / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"containerfs": {"path": str(script)}}}))
    docker_engine.procs["dockerd"].send_signal(signal.SIGHUP)  # dockerd reloads its runtimes
    try:
        assert wait_until(
            lambda: "containerfs" in docker_engine.docker("info", "--format", "{{json .Runtimes}}").stdout
        ), docker_engine.log("dockerd")[-2000:]
        first = "head -n1 /proc/meminfo; busybox free -b"
        common = ["--rm", "--network", "none", "--memory", str(DOCKER_LIMIT), "--cgroup-parent", f"/{NAME}-docker"]
        out = docker_engine.docker(
            "run", *common, "--runtime", "containerfs", docker_engine.image, "sh", "-c", first
        ).stdout
        # Docker's default seccomp profile allows sysinfo: that rule became the notification.
        assert int(out.split()[1]) * 1024 == DOCKER_LIMIT, out
        assert free_total(out) == DOCKER_LIMIT, out
        plain = docker_engine.docker("run", *common, docker_engine.image, "sh", "-c", first).stdout
        assert int(plain.split()[1]) * 1024 == HOST_MEMTOTAL  # without the wrapper: no hooks.d in Docker
    finally:
        config.write_text("{}")
        docker_engine.procs["dockerd"].send_signal(signal.SIGHUP)


def test_a_holder_with_nothing_to_keep_leaves_with_the_daemon(setup):
    assert holder_pid(setup.paths) is not None
    setup.daemon.stop()
    assert wait_until(lambda: holder_pid(setup.paths) is None, timeout=8)
    assert not os.path.exists(setup.paths.listener)


def test_podman_with_the_wrapper_as_runtime(setup, docker_engine, tmp_path):
    from engines import LIMIT as PODMAN_LIMIT
    from engines import NAME

    rootfs = tmp_path / "rootfs"
    shutil.copytree(docker_engine.rootfs, rootfs, symlinks=True)
    out = docker_engine.podman(
        "run",
        "--rm",
        "--runtime",
        str(runtime_script(setup, tmp_path)),
        "--network",
        "none",
        "--memory",
        str(PODMAN_LIMIT),
        "--cgroup-parent",
        f"/{NAME}-podman",
        *("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"),
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "head -n1 /proc/meminfo; busybox free -b",
    ).stdout
    # podman's default seccomp profile allows sysinfo: that rule became the notification.
    assert int(out.split()[1]) * 1024 == PODMAN_LIMIT, out
    assert free_total(out) == PODMAN_LIMIT, out


def test_the_holder_keeps_only_seccomp_listeners(setup, wrapped):
    """A client of the listener socket that sends other descriptors, or nothing, changes nothing."""
    import socket

    holder = holder_pid(setup.paths)
    fds_before = len(os.listdir(f"/proc/{holder}/fd"))
    with open("/dev/null") as devnull, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(setup.paths.listener)
        socket.send_fds(sock, [b"{}"], [devnull.fileno(), sock.fileno()])
    with socket.socket(socket.AF_UNIX) as mute:
        mute.connect(setup.paths.listener)
    c = wrapped.create(memory=LIMIT)  # and the holder still serves
    assert sysinfo_in(c)["totalram"] == LIMIT
    assert holder_pid(setup.paths) == holder
    # The container's init and the exec: two listeners more, nothing else.
    assert wait_until(lambda: len(os.listdir(f"/proc/{holder}/fd")) <= fds_before + 2)
    links = [os.readlink(f"/proc/{holder}/fd/{fd}") for fd in os.listdir(f"/proc/{holder}/fd")]
    assert links.count("/dev/null") == 2  # its stdin and stdout, not the one sent
