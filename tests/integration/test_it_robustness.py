"""Bad input, concurrency, a second daemon, vanishing callers: the daemon keeps serving."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cfs_harness import (
    CONTAINER_PYTHON,
    REPO_ROOT,
    VIEW_FILES,
    containerfs_argv,
    force_unmount,
    is_mounted,
    mount_count,
    parse_meminfo,
)

pytestmark = pytest.mark.integration

READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


def _assert_serving(daemon):
    assert daemon.alive(), "daemon exited:\n" + daemon.log()
    mi = parse_meminfo(daemon.path("proc/meminfo").read_text())
    assert mi["MemTotal"] > 0


def _read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read() if "r" in mode else None


def _expect_errno(fn, allowed, what):
    with pytest.raises(OSError) as exc:
        fn()
    assert exc.value.errno in allowed, f"{what}: {exc.value!r}"


def test_layout_and_modes(containerfs_mount):
    proc = containerfs_mount.path("proc")
    assert {"meminfo", "cpuinfo", "stat", "loadavg", "uptime", "diskstats", "swaps"} <= set(os.listdir(proc))
    for rel in VIEW_FILES:
        st = os.stat(containerfs_mount.path(rel))
        assert st.st_mode & 0o7777 == 0o444, (rel, oct(st.st_mode))
        assert containerfs_mount.path(rel).read_bytes(), rel


def test_writes_and_metadata_changes_rejected(containerfs_mount):
    mp = containerfs_mount.mountpoint
    meminfo = mp / "proc/meminfo"
    before = meminfo.read_text()
    _expect_errno(lambda: _read(meminfo, "w"), (errno.EROFS, errno.EACCES), "open(w)")
    _expect_errno(lambda: _read(meminfo, "a"), (errno.EROFS, errno.EACCES), "open(a)")
    _expect_errno(lambda: os.open(meminfo, os.O_WRONLY), (errno.EROFS, errno.EACCES), "O_WRONLY")
    _expect_errno(lambda: os.open(meminfo, os.O_RDWR), (errno.EROFS, errno.EACCES), "O_RDWR")
    _expect_errno(lambda: _read(mp / "proc/newfile", "w"), (errno.EROFS, errno.EACCES), "create")
    _expect_errno(
        lambda: os.open(mp / "proc/newfile2", os.O_CREAT | os.O_EXCL | os.O_RDONLY),
        (errno.EROFS, errno.EACCES),
        "O_CREAT",
    )
    _expect_errno(lambda: os.mkdir(mp / "proc/newdir"), READ_ONLY_ERRNOS, "mkdir")
    _expect_errno(lambda: os.unlink(meminfo), READ_ONLY_ERRNOS, "unlink")
    _expect_errno(lambda: os.chmod(meminfo, 0o666), READ_ONLY_ERRNOS, "chmod")
    _expect_errno(lambda: os.chown(meminfo, 1, 1), READ_ONLY_ERRNOS, "chown")
    _expect_errno(lambda: os.truncate(meminfo, 0), READ_ONLY_ERRNOS, "truncate")
    _expect_errno(lambda: os.rename(meminfo, mp / "proc/renamed"), READ_ONLY_ERRNOS, "rename")
    assert not (mp / "proc/newfile").exists() and not (mp / "proc/newdir").exists()
    after = meminfo.read_text()
    assert parse_meminfo(after).keys() == parse_meminfo(before).keys()
    assert os.stat(meminfo).st_mode & 0o777 == 0o444
    _assert_serving(containerfs_mount)


def test_nonexistent_is_enoent(containerfs_mount):
    mp = containerfs_mount.mountpoint
    for p in (
        mp / "proc/nonexistent",
        mp / "sys/devices/system/cpu/nonexistent",
        mp / "nonexistent",
        mp / "proc/meminfo/child",
    ):
        _expect_errno(lambda p=p: _read(p), (errno.ENOENT, errno.ENOTDIR), str(p))
        _expect_errno(lambda p=p: os.stat(p), (errno.ENOENT, errno.ENOTDIR), str(p))
    _expect_errno(lambda: _read(mp / "proc/nonexistent"), (errno.ENOENT,), "proc/nonexistent")
    _assert_serving(containerfs_mount)


THREADS_SCRIPT = r"""
import concurrent.futures, json
paths = PATHS
def work(i):
    sizes = []
    for _ in range(20):
        for p in paths:
            with open(p, "rb") as f:
                sizes.append(len(f.read()))
    return sizes
with concurrent.futures.ThreadPoolExecutor(64) as ex:
    results = list(ex.map(work, range(64)))
empty = sorted({paths[i % len(paths)] for r in results for i, s in enumerate(r) if s == 0})
print(json.dumps({"reads": sum(len(r) for r in results), "empty": empty}))
"""


def threads_script(paths):
    """64 threads each reading every path 20 times; prints the read count and empty files."""
    return THREADS_SCRIPT.replace("PATHS", json.dumps([str(p) for p in paths]))


def test_concurrent_reads_host_and_container(containerfs_mount, runc_container):
    mp = containerfs_mount.mountpoint
    container_result = {}

    def in_container():
        container_result["r"] = runc_container.one_shot(
            [CONTAINER_PYTHON, "-c", threads_script(VIEW_FILES.values())], cpu_quota=200000, views_from=mp, timeout=120
        )

    t = threading.Thread(target=in_container)
    t.start()
    try:
        host = subprocess.run(
            [sys.executable, "-c", threads_script(mp / rel for rel in VIEW_FILES)],
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        t.join(150)
    assert host.returncode == 0, host.stderr
    assert json.loads(host.stdout) == {"reads": 64 * 20 * len(VIEW_FILES), "empty": []}
    rc, out, err = container_result["r"]
    assert rc == 0, err
    r = json.loads(out)
    # A container that did no block I/O legitimately has an empty diskstats view (only
    # devices the container did I/O on are listed); every other view must have content.
    assert r["reads"] == 64 * 20 * len(VIEW_FILES), r
    assert set(r["empty"]) <= {"/proc/diskstats"}, r
    _assert_serving(containerfs_mount)


def test_second_daemon_on_same_mountpoint_refused(start_containerfs, tmp_path):
    first = start_containerfs()
    mp = first.mountpoint
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    started = time.monotonic()
    p = subprocess.Popen(
        containerfs_argv(mp),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
        env=env,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"second `containerfs mount -f {mp}` still running after 15 s; stderr: {err}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        # if it stacked a second FUSE mount on top of the first, take that one off
        if mount_count(mp) > 1:
            subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True)
    elapsed = time.monotonic() - started
    print(f"second daemon: rc={p.returncode} after {elapsed:.2f}s, stderr={err.strip()!r}")
    assert p.returncode != 0, (out, err)
    assert err.strip(), "no message on stderr"
    assert elapsed < 10, elapsed
    assert mount_count(mp) == 1
    _assert_serving(first)


VANISH_SCRIPT = r"""
import os, threading, time
children = []
for i in range(90):
    pid = os.fork()
    if pid == 0:
        mode = i % 3
        if mode == 0:                      # open, then exit without reading or closing
            os.open("/proc/meminfo", os.O_RDONLY)
        elif mode == 1:                    # open, read a little, exit
            fd = os.open("/proc/loadavg", os.O_RDONLY)
            os.read(fd, 3)
        else:                              # exit while another thread is mid-read
            def reader():
                while True:
                    for p in ("/proc/stat", "/proc/cpuinfo", "/proc/meminfo"):
                        with open(p, "rb") as f:
                            f.read()
            threading.Thread(target=reader, daemon=True).start()
            time.sleep(0.003)
        os._exit(0)
    children.append(pid)
# a handle opened by a process that is gone by the time its child reads it
opener = os.fork()
if opener == 0:
    me = os.getpid()
    fd = os.open("/proc/meminfo", os.O_RDONLY)
    if os.fork() == 0:
        deadline = time.time() + 10
        while os.path.exists("/proc/%d" % me) and time.time() < deadline:
            time.sleep(0.01)                # until the opener has exited and been reaped
        data = os.pread(fd, 1 << 16, 0)
        os.write(1, b"orphan-read %d\n" % len(data))
    os._exit(0)
for c in children + [opener]:
    os.waitpid(c, 0)
print("forks done", flush=True)
"""


def test_vanished_processes_do_not_kill_daemon(containerfs_mount, runc_container):
    mp = containerfs_mount.mountpoint
    # 1. a container whose only process opens a view and exits at once (its pid namespace
    #    and cgroup go away while the kernel still sends RELEASE)
    for _ in range(3):
        rc, out, err = runc_container.one_shot(
            [CONTAINER_PYTHON, "-c", "import os; os.open('/proc/meminfo', os.O_RDONLY)"], views_from=mp
        )
        assert rc == 0, err
    # 2. many short-lived readers racing their own exit, in one container
    c = runc_container.create(views_from=mp)
    # (the orphaned reader inherits stdout, so exec returns only after it has printed)
    rc, out, err = c.exec(CONTAINER_PYTHON, "-c", VANISH_SCRIPT, timeout=120)
    assert rc == 0, err
    assert "forks done" in out, out
    assert "orphan-read" in out and "orphan-read 0" not in out, out
    # the daemon survived and serves both the host and the container
    _assert_serving(containerfs_mount)
    rc, out, err = c.exec("cat", "/proc/meminfo")
    assert rc == 0 and parse_meminfo(out)["MemTotal"] == 262144, (out, err)


def test_sigterm_unmounts_and_a_new_daemon_can_mount(start_containerfs):
    """-f exits on SIGTERM and unmounts: nothing left, and a new daemon can take over."""
    d = start_containerfs()
    mp = d.mountpoint
    d.proc.terminate()
    rc = d.proc.wait(timeout=10)
    still = is_mounted(mp)
    force_unmount(mp)
    assert not still, f"mount left behind after SIGTERM (rc={rc})"
    _assert_serving(start_containerfs(mountpoint=mp))
    # A requested stop is not a failure (systemd would mark the unit failed on exit 1).
    assert rc in (0, -signal.SIGTERM), f"SIGTERM exit status {rc}; log:\n{d.log()}"


def test_dead_mount_of_killed_daemon_is_replaced(start_containerfs):
    """A killed daemon leaves a dead FUSE mount (ENOTCONN); a new daemon replaces it."""
    d = start_containerfs()
    mp = d.mountpoint
    d.proc.kill()
    d.proc.wait(timeout=10)
    assert is_mounted(mp)
    _expect_errno(lambda: _read(mp / "proc/meminfo"), (errno.ENOTCONN, errno.ECONNABORTED), "read from dead mount")
    d2 = start_containerfs(mountpoint=mp)
    _assert_serving(d2)
    assert mount_count(mp) == 1


def test_daemonized_mount_and_umount(tmp_path):
    """`containerfs mount MP` (no -f) returns once the mount is ready; `umount` removes it."""
    mp = tmp_path / "daemonized"
    run_dir = str(tmp_path / "run")  # never the host's /run/containerfs
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cli = [sys.executable, "-m", "containerfs"]
    try:
        p = subprocess.run(
            [*cli, "mount", "--run-dir", run_dir, str(mp)],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=str(REPO_ROOT),
            env=env,
        )
        assert p.returncode == 0, p.stderr
        # ready when mount returns: no polling
        assert parse_meminfo((mp / "proc/meminfo").read_text())["MemTotal"] > 0
        p = subprocess.run(
            [*cli, "umount", "--run-dir", run_dir, str(mp)],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=str(REPO_ROOT),
            env=env,
        )
        assert p.returncode == 0, p.stderr
        assert not is_mounted(mp)
        assert os.listdir(run_dir) == []  # umount returned once the daemon had stopped and cleaned up
    finally:
        # the daemon exits by itself once its mount is gone
        force_unmount(mp)
