"""Views reach containers with no per-container mounts: OCI hooks, `inject`, the watcher,
the LXC hook, and a daemon restart (kill -9 or clean) that running containers survive."""

import os
import subprocess
import sys
import time

import pytest
from cfs_harness import (
    CGROUP_ROOT,
    PREFIX,
    REPO_ROOT,
    SESSION,
    cgroup_v2,
    memory_limit_file,
    remove_cgroup_tree,
    scaled,
    v1_controller_dirs,
)

pytestmark = pytest.mark.integration

LIMIT = 192 * 1024 * 1024
with open("/proc/meminfo") as _meminfo:
    HOST_MEMTOTAL = int(_meminfo.readline().split()[1]) * 1024
SESSION_CGROUPS = f"/{PREFIX}-{SESSION}*"


def cfs(*args, stdin=None):
    result = subprocess.run(
        [sys.executable, "-m", "containerfs", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        cwd=REPO_ROOT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def hook(mountpoint, log, *extra):
    argv = [sys.executable, "-m", "containerfs", "oci-hook", "--mountpoint", str(mountpoint), "--log-file", str(log)]
    return {"path": sys.executable, "args": [*argv, *extra], "env": [f"PYTHONPATH={REPO_ROOT}"]}


def bound(mountpoint):
    """How many mounts injection makes: the proc views, the cpu directory, a stat per block device."""
    from containerfs.inject.attach import served_views

    return len(served_views(str(mountpoint)))


def free_total(output):
    """Total memory from `free -b`."""
    mem = next(line for line in output.splitlines() if line.startswith("Mem:"))
    return int(mem.split()[1])


def memtotal(container):
    rc, out, err = container.sh("head -1 /proc/meminfo")
    assert rc == 0, err
    return int(out.split()[1]) * 1024


def view_mounts(container):
    _, out, _ = container.sh("grep -c ' - fuse.containerfs ' /proc/self/mountinfo")
    return int(out.strip() or 0)


def wait_until(predicate, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except (AssertionError, OSError, ValueError):
            pass
        time.sleep(interval)
    return None


@pytest.mark.parametrize("stage", ["prestart", "createRuntime", "createContainer"])
def test_oci_hook_binds_the_views_before_the_container_starts(stage, containerfs_mount, runc_container, tmp_path):
    log = tmp_path / "hook.log"
    hooks = {stage: [hook(containerfs_mount.mountpoint, log)]}
    rc, out, err = runc_container.one_shot(["free", "-b"], memory=LIMIT, hooks=hooks)
    assert rc == 0, err
    assert free_total(out) == LIMIT
    assert f"{bound(containerfs_mount.mountpoint)} attached" in log.read_text()


def test_oci_hook_without_a_daemon_starts_the_container_and_says_why(runc_container, tmp_path):
    log = tmp_path / "hook.log"
    idle = tmp_path / "no-daemon"
    idle.mkdir()
    rc, out, err = runc_container.one_shot(["free", "-b"], memory=LIMIT, hooks={"createRuntime": [hook(idle, log)]})
    assert rc == 0, err
    assert free_total(out) == HOST_MEMTOTAL
    assert f"starts with the host's files: no containerfs daemon serves {idle}" in log.read_text()


def test_oci_hook_can_refuse_to_start_without_a_daemon(runc_container, tmp_path):
    log = tmp_path / "hook.log"
    idle = tmp_path / "no-daemon"
    idle.mkdir()
    hooks = {"createRuntime": [hook(idle, log, "--require-daemon")]}
    rc, _, _ = runc_container.one_shot(["true"], hooks=hooks)
    assert rc != 0
    assert "refused: no containerfs daemon serves" in log.read_text()


def test_oci_hook_honours_the_opt_out_annotation(containerfs_mount, runc_container, tmp_path):
    log = tmp_path / "hook.log"
    rc, out, err = runc_container.one_shot(
        ["free", "-b"],
        memory=LIMIT,
        hooks={"createRuntime": [hook(containerfs_mount.mountpoint, log)]},
        annotations={"io.containerfs.skip": "true"},
    )
    assert rc == 0, err
    assert free_total(out) == HOST_MEMTOTAL
    assert "opted out" in log.read_text()


def test_inject_into_a_running_container_is_idempotent(containerfs_mount, runc_container):
    c = runc_container(memory=LIMIT)
    assert memtotal(c) == HOST_MEMTOTAL
    first = cfs("inject", "--mountpoint", containerfs_mount.mountpoint, c.pid)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"pid {c.pid}: {bound(containerfs_mount.mountpoint)} attached\n"
    assert free_total(c.exec("free", "-b")[1]) == LIMIT
    second = cfs("inject", "--mountpoint", containerfs_mount.mountpoint, c.pid)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"pid {c.pid}: {bound(containerfs_mount.mountpoint)} already there\n"
    assert view_mounts(c) == bound(containerfs_mount.mountpoint)
    assert memtotal(c) == LIMIT


def test_inject_all_finds_every_running_container(containerfs_mount, runc_container):
    containers = [runc_container(memory=LIMIT, name=f"all{i}") for i in range(2)]
    result = cfs("inject", "--all", "--mountpoint", containerfs_mount.mountpoint)
    assert result.returncode == 0, result.stderr
    for c in containers:
        assert f"pid {c.pid}: {bound(containerfs_mount.mountpoint)} attached\n" in result.stdout
        assert memtotal(c) == LIMIT


@pytest.mark.parametrize(
    ("pid", "message"),
    [
        (2**22 + 7, "no process"),  # above any pid_max default: never a live process
        (os.getpid(), "shares the host's mount namespace"),
    ],
)
def test_inject_refuses_missing_and_host_processes(containerfs_mount, pid, message):
    result = cfs("inject", "--mountpoint", containerfs_mount.mountpoint, pid)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_inject_without_a_daemon_fails_cleanly(runc_container, tmp_path):
    c = runc_container()
    result = cfs("inject", "--mountpoint", tmp_path, c.pid)
    assert result.returncode == 1
    assert "no containerfs daemon serves" in result.stderr


def test_watcher_injects_containers_started_with_no_mounts_and_no_hook(start_containerfs, runc_container):
    d = start_containerfs("--watch", "--watch-include", SESSION_CGROUPS, "--watch-interval", "0.2")
    c = runc_container(memory=LIMIT)
    assert wait_until(lambda: memtotal(c) == LIMIT), "the watcher did not inject the container"
    assert view_mounts(c) == bound(d.mountpoint)


def test_watcher_wakes_when_a_cgroup_appears(start_containerfs, runc_container):
    # A poll every 60 s could not do it: the new cgroup's inotify event starts the search.
    daemon = start_containerfs("--watch", "--watch-include", SESSION_CGROUPS, "--watch-interval", "60")
    time.sleep(0.5)  # the watcher's first look happened before this container existed
    c = runc_container(memory=LIMIT)
    started = time.monotonic()
    assert wait_until(lambda: memtotal(c) == LIMIT, timeout=10), daemon.log()
    assert time.monotonic() - started < scaled(5)


def test_watcher_leaves_excluded_containers_alone(start_containerfs, runc_container):
    daemon = start_containerfs(
        "--watch", "--watch-include", SESSION_CGROUPS, "--watch-exclude", "*/skipme", "--watch-interval", "0.2"
    )
    skipped = runc_container(memory=LIMIT, name="skipme")
    taken = runc_container(memory=LIMIT, name="takeme")
    assert wait_until(lambda: memtotal(taken) == LIMIT)
    assert memtotal(skipped) == HOST_MEMTOTAL and view_mounts(skipped) == 0
    assert "skipme" not in daemon.log()


def test_kill_9_then_restart_heals_running_containers(start_containerfs, runc_container, tmp_path):
    mountpoint = tmp_path / "views"
    first = start_containerfs(mountpoint=mountpoint)
    containers = [runc_container(memory=LIMIT + i * 2**20, name=f"c{i}") for i in range(3)]
    pids = [c.pid for c in containers]
    assert cfs("inject", "--mountpoint", mountpoint, *pids).returncode == 0
    first.proc.kill()
    first.proc.wait()
    _, _, err = containers[0].sh("cat /proc/meminfo")
    assert "Transport endpoint is not connected" in err  # the failure lxcfs users live with

    second = start_containerfs(mountpoint=mountpoint)  # no fusermount -u, no inject
    for i, c in enumerate(containers):
        assert wait_until(lambda c=c, i=i: memtotal(c) == LIMIT + i * 2**20, timeout=5), second.log()
        assert view_mounts(c) == bound(mountpoint)  # the stale mounts were swapped, not stacked
    assert [c.pid for c in containers] == pids  # nothing was restarted
    assert "healed views in 3 containers" in second.log()


def test_clean_stop_leaves_host_files_then_restart_restores_views(start_containerfs, runc_container, tmp_path):
    mountpoint = tmp_path / "views"
    run_dir = tmp_path / "run"
    daemon = start_containerfs("--run-dir", run_dir, mountpoint=mountpoint)
    c = runc_container(memory=LIMIT)
    assert cfs("inject", "--mountpoint", mountpoint, c.pid).returncode == 0
    daemon.stop()
    # Not "Transport endpoint is not connected": the container's own files, host figures.
    assert memtotal(c) == HOST_MEMTOTAL
    assert view_mounts(c) == 0
    start_containerfs("--run-dir", run_dir, mountpoint=mountpoint)
    assert wait_until(lambda: memtotal(c) == LIMIT, timeout=5)
    assert view_mounts(c) == bound(mountpoint)


@pytest.fixture
def memory_cgroup():
    hierarchy = CGROUP_ROOT if cgroup_v2() else v1_controller_dirs()["memory"]
    path = hierarchy / f"{PREFIX}-{SESSION}-lxc"
    path.mkdir()
    try:
        yield path
    finally:
        remove_cgroup_tree(path)


def test_lxc_mount_hook_script(containerfs_mount, memory_cgroup, tmp_path):
    """What LXC does: a new mount namespace, the rootfs mounted, then lxc.hook.mount."""
    (memory_cgroup / memory_limit_file()).write_text(str(LIMIT))
    rootfs = tmp_path / "rootfs"
    (rootfs / "proc").mkdir(parents=True)
    (rootfs / "sys").mkdir()
    # The script runs /usr/bin/containerfs (the RPM's and install.sh's); $CONTAINERFS overrides it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "containerfs").write_text(f'#!/bin/sh\nexec {sys.executable} -m containerfs "$@"\n')
    (bin_dir / "containerfs").chmod(0o755)
    script = f"""
        echo $$ > {memory_cgroup}/cgroup.procs
        exec unshare -m --propagation private sh -ec '
            mount --bind {rootfs} {rootfs}
            mount -t proc proc {rootfs}/proc
            mount -t sysfs sysfs {rootfs}/sys
            LXC_ROOTFS_MOUNT={rootfs} LXC_NAME=c1 {REPO_ROOT}/packaging/lxc/containerfs-mount-hook c1 lxc mount
            head -1 {rootfs}/proc/meminfo'
    """
    env = {
        **os.environ,
        "CONTAINERFS": str(bin_dir / "containerfs"),
        "PYTHONPATH": str(REPO_ROOT),
        "CONTAINERFS_MOUNTPOINT": str(containerfs_mount.mountpoint),
    }
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=scaled(60))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MemTotal:", str(LIMIT // 1024), "kB"]
    assert f"container c1: {bound(containerfs_mount.mountpoint)} attached" in result.stderr


def test_a_namespace_that_hangs_does_not_stall_injection(start_containerfs):
    """A target behind a FUSE daemon that never answers: the child is killed, an error returned."""
    import signal

    from containerfs.inject import syscalls
    from containerfs.inject.namespace import apply_in_namespace
    from containerfs.inject.plan import Action, Step

    serving = start_containerfs()
    frozen = start_containerfs()
    # The daemon no longer walks its own mount; still, freeze it only once it has started.
    assert wait_until(lambda: "healed views in" in frozen.log(), timeout=10), frozen.log()
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    tree = syscalls.open_tree(str(serving.path("proc/meminfo")))
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    try:
        step = Step("proc/meminfo", str(frozen.path("proc/never-looked-up/meminfo")), Action.ATTACH)
        started = time.monotonic()
        with pytest.raises(OSError, match="did not answer within 1s"):
            apply_in_namespace(own, [step], {0: tree}, timeout=1.0)
        assert time.monotonic() - started < scaled(5)
    finally:
        os.close(own)
        os.close(tree)
        os.kill(frozen.proc.pid, signal.SIGCONT)
