"""Bad input, concurrency, a second daemon, vanishing callers: the daemon keeps serving."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cfs_harness import (
    CONTAINER_PYTHON,
    PREFIX,
    REPO_ROOT,
    SESSION,
    VIEW_FILES,
    containerfs_argv,
    force_unmount,
    host_meminfo,
    is_mounted,
    mount_count,
    parse_meminfo,
    remove_cgroup_tree,
    v1_controller_dirs,
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


# --------------------------------------------------------------------------- isolation (issue 9)

WAYS_SCRIPT = r"""
import json, os, shutil, subprocess, sys, tempfile
out = {}
for path in PATHS:
    with open(path, "rb") as f:
        whole = f.read()
    got = {"read": whole}
    fd = os.open(path, os.O_RDONLY)
    chunks, offset = [], 0
    while True:
        chunk = os.pread(fd, 7, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    got["pread7"] = b"".join(chunks)
    with open("/tmp/sendfile", "wb") as dst:
        os.lseek(fd, 0, 0)
        n = 0
        while True:
            sent = os.sendfile(dst.fileno(), fd, None, 1 << 20)
            if not sent:
                break
            n += sent
    got["sendfile"] = open("/tmp/sendfile", "rb").read()
    r, w = os.pipe()
    os.lseek(fd, 0, 0)
    spliced = b""
    while True:
        n = os.splice(fd, w, 65536)
        if not n:
            break
        spliced += os.read(r, n)
    got["splice"] = spliced
    os.close(r); os.close(w); os.close(fd)
    shutil.copyfile(path, "/tmp/copy")
    got["copyfile"] = open("/tmp/copy", "rb").read()
    got["busybox cat"] = subprocess.run(["busybox", "cat", path], capture_output=True).stdout
    got["stdio"] = b"".join(open(path, "rb", buffering=16))
    fd = os.open(path, os.O_RDONLY)
    with open("/tmp/cfr", "wb") as dst:
        try:
            copied = b""
            while os.copy_file_range(fd, dst.fileno(), 1 << 20):
                pass
            got["copy_file_range"] = open("/tmp/cfr", "rb").read()
        except OSError as err:
            got["copy_file_range"] = err.errno  # EXDEV between file systems: not applicable
    os.close(fd)
    out[path] = {k: v.decode() if isinstance(v, bytes) else v for k, v in got.items()}
print(json.dumps(out))
"""

STABLE = ("/proc/cpuinfo", "/sys/devices/system/cpu/online", "/proc/swaps")
# The ways that read through the page cache, which every open of a file shares.
PAGE_CACHE_WAYS = ("sendfile", "copyfile", "busybox cat", "splice")


def _shape(text):
    """Each line's field count and first field unless it is a figure."""
    return [
        (len(fields), fields[0] if fields and not fields[0].replace(".", "").isdigit() else "")
        for fields in (line.split() for line in text.splitlines())
    ]


def _check_ways(result, where):
    for path, got in result.items():
        whole = got.pop("read")
        # A container that did no block I/O has an empty diskstats.
        assert whole.endswith("\n") or (path == "/proc/diskstats" and whole == ""), (where, path, whole)
        if isinstance(got.get("copy_file_range"), int):
            assert got.pop("copy_file_range") == errno.EXDEV
        for way, content in got.items():
            if way in PAGE_CACHE_WAYS:
                # Known limit (README): through the page cache, after a shorter content a
                # read can come back cut; never another's, never padded.
                assert "\0" not in content, (where, path, way)
                if path in STABLE:
                    assert whole.startswith(content), (where, path, way, content, whole)
                continue
            if path in STABLE:
                assert content == whole, (where, path, way, len(content), len(whole))
            else:  # live figures: the same lines, whole, neither cut nor padded
                assert _shape(content) == _shape(whole), (where, path, way, content)
                assert content.endswith("\n") or content == whole == "", (where, path, way)
                assert "\0" not in content, (where, path, way)


def test_every_way_of_reading_gets_the_whole_content(containerfs_mount, runc_container):
    """read, pread with 7-byte buffers, stdio, sendfile, splice, shutil.copyfile, busybox cat
    (sendfile) and copy_file_range, in containers whose contents differ in length, taking
    turns so a shorter content is read just before a longer one.  The page-cache ways
    (sendfile, splice) get content (size 0 gave none); it may be cut, never another's."""
    mp = containerfs_mount.mountpoint
    script = WAYS_SCRIPT.replace("PATHS", json.dumps(list(VIEW_FILES.values())))
    small = runc_container.create(views_from=mp, cpus="0", memory=64 << 20, name="small")
    large = runc_container.create(views_from=mp, cpus="0-1", memory=512 << 20, name="large")
    lengths = {}
    for _turn in range(2):
        for c in (small, large):
            rc, out, err = c.exec(CONTAINER_PYTHON, "-c", script, timeout=120)
            assert rc == 0, err
            result = json.loads(out)
            lengths[c.id] = len(result["/proc/cpuinfo"]["read"])
            assert parse_meminfo(result["/proc/meminfo"]["busybox cat"])["MemTotal"] == (
                65536 if c is small else 524288
            )
            _check_ways(result, c.id)
        host = subprocess.run(
            [sys.executable, "-c", WAYS_SCRIPT.replace("PATHS", json.dumps([str(mp / rel) for rel in VIEW_FILES]))],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert host.returncode == 0, host.stderr
        _check_ways(json.loads(host.stdout), "host")
    assert lengths[small.id] < lengths[large.id]
    _assert_serving(containerfs_mount)


ATTACK_A = r"""
import os, time
deadline = time.time() + SECONDS
n = 0
while time.time() < deadline:
    pid = os.fork()
    if pid == 0:
        fd = os.open("/proc/meminfo", os.O_RDONLY)
        os.read(fd, 10)  # stops early: never reaches the end, exits without closing
        os._exit(0)
    os.waitpid(pid, 0)
    n += 1
print(n)
"""

ATTACK_B = r"""
import os, threading, time
deadline = time.time() + SECONDS
counts = {"reads": 0, "foreign": 0, "torn": 0}
def opens():
    while time.time() < deadline:
        fd = os.open("/proc/meminfo", os.O_RDONLY)
        data = os.pread(fd, 65536, 1)  # a fresh open read first at an offset above 0
        os.close(fd)
        counts["reads"] += 1
        if not data.startswith(b"emTotal:") or int(data.split()[1]) != EXPECTED:
            counts["foreign"] += 1
def handoff():
    # two threads on one descriptor, as thread pools do: one starts, the other goes on
    while time.time() < deadline:
        fd = os.open("/proc/stat", os.O_RDONLY)
        first = os.pread(fd, 64, 0)
        rest = []
        t = threading.Thread(target=lambda: rest.append(os.pread(fd, 1 << 16, 64)))
        t.start(); t.join()
        os.close(fd)
        lines = (first + rest[0]).decode().splitlines()
        cpus = [list(map(int, l.split()[1:])) for l in lines if l.startswith("cpu") and l[3] != " "]
        total = list(map(int, lines[0].split()[1:]))
        if [sum(col) for col in zip(*cpus)] != total:
            counts["torn"] += 1
threads = [threading.Thread(target=opens) for _ in range(2)] + [threading.Thread(target=handoff)]
for t in threads: t.start()
for t in threads: t.join()
print(counts)
"""


def test_one_container_never_reads_another_containers_open_file(containerfs_mount, runc_container):
    """Container A reads the start of meminfo and exits, over and over; container B opens
    it afresh and reads first at offset 1 (what a recycled thread id would have been served
    before), and hands /proc/stat between two threads.  0 foreign, 0 torn."""
    mp = containerfs_mount.mountpoint
    seconds = 8
    a = runc_container.create(views_from=mp, memory=512 << 20, name="a")
    b = runc_container.create(views_from=mp, memory=256 << 20, cpus="0-1", name="b")
    results = {}

    def run_a():
        results["a"] = a.exec(CONTAINER_PYTHON, "-c", ATTACK_A.replace("SECONDS", str(seconds)), timeout=60)

    t = threading.Thread(target=run_a)
    t.start()
    rc, out, err = b.exec(
        CONTAINER_PYTHON, "-c", ATTACK_B.replace("SECONDS", str(seconds)).replace("EXPECTED", "262144"), timeout=60
    )
    t.join(60)
    assert rc == 0, err
    assert results["a"][0] == 0, results["a"][2]
    counts = eval(out)  # the script's own dict literal
    print(f"A: {results['a'][1].strip()} partial reads; B: {counts}")
    assert counts["reads"] > 50 and int(results["a"][1]) > 20
    assert counts["foreign"] == 0 and counts["torn"] == 0, counts
    _assert_serving(containerfs_mount)


READER_LOOP = r"""
import json, os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
totals, errors = {}, 0
deadline = time.time() + seconds
print("ready", flush=True)
while time.time() < deadline:
    try:
        with open(path, "rb") as f:
            first = f.readline()
        total = int(first.split()[1])
        totals[total] = totals.get(total, 0) + 1
    except OSError as err:
        errors += 1
print(json.dumps({"totals": totals, "errors": errors}), flush=True)
"""


def _v1_dir(controller):
    for key, mount in v1_controller_dirs().items():
        if controller in key.split(","):
            return mount
    pytest.fail(f"no v1 {controller} hierarchy")


def _own_cgroup(controller, name):
    path = _v1_dir(controller) / f"{PREFIX}-{SESSION}{uuid.uuid4().hex[:6]}-{name}"
    path.mkdir()
    return path


def _in_own_mount_namespace(cgroup_dirs, *argv):
    """A host-pid-namespace process in its own mount namespace (so it is a container to
    the daemon, like `docker run --pid=host`) that joins cgroup_dirs before it runs argv."""
    joins = "".join(f"echo $$ > {d}/cgroup.procs; " for d in cgroup_dirs)
    return subprocess.Popen(
        ["sh", "-c", f'{joins}exec unshare -m "$@"', "sh", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_reader_moved_out_of_a_removed_cgroup_never_reads_host_figures(containerfs_mount):
    """A real process in a real v1 memory cgroup reads meminfo in a loop while it is moved
    to a new cgroup and its old one is removed, again and again: every read shows one of
    its own limits, none the host's MemTotal."""
    limits = (256 << 20, 128 << 20)
    made = []
    try:
        current = _own_cgroup("memory", "move0")
        made.append(current)
        (current / "memory.limit_in_bytes").write_text(str(limits[0]))
        reader = _in_own_mount_namespace(
            [current], sys.executable, "-c", READER_LOOP, str(containerfs_mount.path("proc/meminfo")), "6"
        )
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        moves = 0
        while reader.poll() is None and moves < 40:
            time.sleep(0.1)
            nxt = _own_cgroup("memory", f"move{moves + 1}")
            made.append(nxt)
            (nxt / "memory.limit_in_bytes").write_text(str(limits[(moves + 1) % 2]))
            try:
                (nxt / "cgroup.procs").write_text(str(reader.pid))
            except OSError:
                break  # the reader finished
            remove_cgroup_tree(current)
            current = nxt
            moves += 1
        out, _ = reader.communicate(timeout=30)
    finally:
        for d in made:
            remove_cgroup_tree(d)
    result = json.loads(out.strip().splitlines()[-1])
    totals = {int(k): v for k, v in result["totals"].items()}
    print(f"{moves} moves; MemTotal seen: {totals}; errors {result['errors']}")
    host_total = host_meminfo()["MemTotal"]
    assert moves >= 10 and sum(totals.values()) > 100, (moves, totals)
    assert host_total not in totals, f"{totals[host_total]} reads got the host's MemTotal"
    assert set(totals) <= {limit >> 10 for limit in limits}, totals
    assert result["errors"] <= sum(totals.values()) // 100, result
    _assert_serving(containerfs_mount)


STAT_USER = r"""
import sys, time
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    pass  # burn CPU time in this cgroup
with open(sys.argv[1]) as f:
    print(f.readline())
"""


def test_a_recreated_cgroup_path_is_a_new_container(containerfs_mount):
    """docker restart keeps the cgroup path: the new container must not inherit the old
    one's stat counters (floors) or load."""
    stat_path = str(containerfs_mount.path("proc/stat"))
    cpu = _own_cgroup("cpuacct", "restart")
    memory = _v1_dir("memory") / cpu.name
    memory.mkdir()
    try:
        first = _in_own_mount_namespace([cpu, memory], sys.executable, "-c", STAT_USER, stat_path, "3")
        out, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        old_user = int(out.split()[1])
        assert old_user >= 30, out  # seconds of CPU in USER_HZ ticks (on a busy machine)
        remove_cgroup_tree(cpu)
        remove_cgroup_tree(memory)
        cpu.mkdir()
        memory.mkdir()
        second = _in_own_mount_namespace([cpu, memory], sys.executable, "-c", STAT_USER, stat_path, "0")
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        new_user = int(out.split()[1])
    finally:
        remove_cgroup_tree(cpu)
        remove_cgroup_tree(memory)
    print(f"old container's cpu user {old_user}, new one's {new_user}")
    assert new_user < old_user // 2, "the recreated cgroup inherited the old container's counters"
    _assert_serving(containerfs_mount)


READ_ONCE = r"""
import sys
with open(sys.argv[1]) as f:
    print(f.readline().split()[1])
"""


def _memtotal_in_cgroup(directory, meminfo):
    p = _in_own_mount_namespace([directory], sys.executable, "-c", READ_ONCE, meminfo)
    out, err = p.communicate(timeout=30)
    return int(out) if p.returncode == 0 and out.strip() else f"rc={p.returncode} {err.strip()}"


@pytest.mark.parametrize("nofile", [24])
def test_short_of_descriptors_every_container_still_gets_its_figures(request, tmp_path, nofile):
    """Started with a tiny descriptor limit, then lowered further while it serves: each of
    many containers reads its own MemTotal, none the host's, none an error."""
    from cfs_harness import FuseDaemon
    from conftest import attach_log

    mp = tmp_path / "pressure"
    argv = ["prlimit", f"--nofile={nofile}:{nofile}", *containerfs_argv(mp, "--run-dir", str(tmp_path / "run"))]
    daemon = FuseDaemon("containerfs", argv, mp, tmp_path / "pressure.log")
    attach_log(request, "containerfs daemon log (pressure)", daemon.log_path, daemon)
    made = []
    try:
        daemon.start()
        meminfo = str(mp / "proc/meminfo")
        for i in range(24):
            d = _own_cgroup("memory", f"fd{i}")
            made.append(d)
            (d / "memory.limit_in_bytes").write_text(str((64 + i) << 20))
        seen = {d.name: _memtotal_in_cgroup(d, meminfo) for d in made}
        wrong = {name: v for name, v in seen.items() if v != (64 + made.index(_v1_dir("memory") / name)) << 10}
        assert not wrong, f"at RLIMIT_NOFILE {nofile}: {wrong}"
        # Lower the running daemon's limit to what it holds now plus a little.
        held = len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))
        subprocess.run(["prlimit", f"--pid={daemon.proc.pid}", f"--nofile={held}:{held}"], check=True)
        for i in range(24, 40):
            d = _own_cgroup("memory", f"fd{i}")
            made.append(d)
            (d / "memory.limit_in_bytes").write_text(str((64 + i) << 20))
        seen = {d.name: _memtotal_in_cgroup(d, meminfo) for d in made}
        wrong = {name: v for name, v in seen.items() if v != (64 + made.index(_v1_dir("memory") / name)) << 10}
        assert not wrong, f"at RLIMIT_NOFILE {held} (lowered at runtime): {wrong}"
        assert daemon.alive()
    finally:
        daemon.stop()
        for d in made:
            remove_cgroup_tree(d)


def test_a_fifo_over_a_cgroup_file_stalls_no_one(start_containerfs, tmp_path):
    """A FIFO where a cgroup file should be (a container that controls its cgroup tree
    could bind one there): its reader gets an error at once, and the host's readers and
    status keep their answers within a second.  The cgroup root is a v2 tree in a temporary
    directory (--cgroup-root), so nothing is mounted over the host's own files."""
    from containerfs.daemon import control

    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "memory.current").write_text("1048576\n")
    (root / "memory.max").write_text("max\n")
    os.mkfifo(root / "memory.stat")
    daemon = start_containerfs("--cgroup-root", str(root))
    meminfo = str(daemon.path("proc/meminfo"))
    # In its own mount namespace, this reader is a container: its cgroup is this tree's root.
    reader = _in_own_mount_namespace([], sys.executable, "-c", READ_ONCE, meminfo)
    try:
        out, err = reader.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        reader.kill()
        reader.communicate()
        pytest.fail("the reader of a view over a FIFO hung")
    assert reader.returncode != 0 and "Input/output error" in err, (out, err)
    started = time.monotonic()
    assert parse_meminfo(Path(meminfo).read_text())["MemTotal"] == host_meminfo()["MemTotal"]
    answer = control.request(control.socket_path(str(daemon.mountpoint), str(tmp_path / "run")), {"request": "status"})
    assert answer["ok"] and time.monotonic() - started < 1.0
    assert "not a regular file" in daemon.log()
