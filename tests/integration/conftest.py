"""Fixtures for the integration tests (helpers live in cfs_harness.py).

Prerequisites (root, /dev/fuse, runc, lxcfs, fusermount3, procps, sysstat) are checked once
per session: missing ones skip the tests, or fail them when CI=true.  Every fixture tears
down what it created, also when the test fails: daemons get SIGTERM (then
``fusermount3 -uz``), containers ``runc delete -f``, and the cgroup directories runc leaves
behind are removed in every hierarchy.  On failure the daemon logs are attached to the report.
"""

import os
import sys
from pathlib import Path

import pytest
from cfs_harness import (
    ContainerFactory,
    FuseDaemon,
    cgroup_v2,
    containerfs_argv,
    missing_prerequisites,
    sweep_leftovers,
)

_log_key = pytest.StashKey[list]()


@pytest.fixture(scope="session", autouse=True)
def integration_prerequisites():
    missing = missing_prerequisites()
    if missing:
        msg = "integration prerequisites missing: " + "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    yield
    # Session-end sweep: anything of ours still around is a harness bug; clean it and say so.
    leftovers = sweep_leftovers()
    if leftovers:
        sys.stderr.write(f"\nintegration harness cleaned leftovers: {leftovers}\n")


# What the cgroup v2 guest (scripts/v2-guest.sh sets CONTAINERFS_IT_GUEST=1) leaves to the
# host run, and why.  Everything else runs in both places.
GUEST_DESELECT = {
    "test_it_v2.py": "drives a fixture v2 host through --cgroup-root: the same on any kernel, run on the host",
    "test_it_engines.py": "starts dockerd, containerd, podman and lxc: minutes each under qemu's emulation, "
    "and their injection routes do not depend on the cgroup layout (run on the host); the guest drives runc",
    "test_it_robustness.py": "load and concurrency on the daemon, not the cgroup layout: qemu's emulated CPU "
    "would only measure the emulation (run on the host)",
    "test_it_tools.py::test_diskstats_and_iostat_show_the_containers_own_io": "needs /usr on a block device; "
    "the guest's root is 9p (io.stat over real disks: test_it_v2_kernel.py::test_io_stat_over_two_devices)",
    "test_it_inject.py::test_a_namespace_that_hangs_does_not_stall_injection": "a SIGSTOPped daemon and a "
    "timeout in the injector: no cgroup involved (run on the host)",
}


def pytest_collection_modifyitems(config, items):
    """Deselect, saying why, never skip: tests for the cgroup layout this host does not have
    (v2kernel tests run in the guest), and in the guest what GUEST_DESELECT names."""
    other = "v1kernel" if cgroup_v2() else "v2kernel"
    reasons = {}
    for item in items:
        if item.get_closest_marker(other):
            reasons[item] = f"{other}: this host is " + ("cgroup v2" if cgroup_v2() else "cgroup v1/hybrid")
        elif os.environ.get("CONTAINERFS_IT_GUEST") == "1":
            nodeid = item.nodeid.split("tests/integration/")[-1]
            for prefix, reason in GUEST_DESELECT.items():
                if nodeid == prefix or nodeid.startswith(prefix + "::") or nodeid.startswith(prefix + "["):
                    reasons[item] = reason
    if not reasons:
        return
    items[:] = [item for item in items if item not in reasons]
    config.hook.pytest_deselected(items=list(reasons))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for reason in sorted(set(reasons.values())):
            count = sum(1 for r in reasons.values() if r == reason)
            reporter.write_line(f"deselected {count}: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown" or not report.failed:
        return
    for title, path, daemon in item.stash.get(_log_key, []):
        if daemon is not None and daemon.proc is not None:
            rc = daemon.proc.poll()
            title += " [still running]" if rc is None else f" [exited rc={rc}]"
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            text = f"<cannot read {path}: {exc}>"
        if len(text) > 20000:
            text = "...[truncated]...\n" + text[-20000:]
        report.sections.append((title, text))


def attach_log(request, title, path, daemon=None):
    request.node.stash.setdefault(_log_key, []).append((title, str(path), daemon))


@pytest.fixture
def start_containerfs(request, tmp_path):
    """Factory: start_containerfs(*extra_args) -> FuseDaemon (stopped at teardown)."""
    daemons = []

    def start(*extra, mountpoint=None):
        n = len(daemons)
        mp = Path(mountpoint) if mountpoint else tmp_path / f"containerfs{n}"
        log_path = tmp_path / f"containerfs{n}.log"
        if "--run-dir" not in extra:  # never the host's /run/containerfs: nothing left behind
            extra = ("--run-dir", str(tmp_path / "run"), *extra)
        d = FuseDaemon("containerfs", containerfs_argv(mp, *extra), mp, log_path)
        attach_log(request, f"containerfs daemon log ({mp})", log_path, d)
        daemons.append(d)
        return d.start()

    try:
        yield start
    finally:
        for d in reversed(daemons):
            d.stop()


@pytest.fixture
def containerfs_mount(request, start_containerfs, tmp_path):
    """A running `containerfs mount -f` on a fresh temporary mountpoint.

    Harness self-check: with CONTAINERFS_IT_DAEMON=lxcfs the same fixture serves the views
    with lxcfs instead (expect the containerfs-specific tests to fail there).
    """
    if os.environ.get("CONTAINERFS_IT_DAEMON") == "lxcfs":
        d = _lxcfs_daemon(request, tmp_path, "lxcfs-as-containerfs")
        try:
            yield d.start()
        finally:
            d.stop()
    else:
        yield start_containerfs()


def _lxcfs_daemon(request, tmp_path, name):
    mp = tmp_path / name
    log_path = tmp_path / f"{name}.log"
    d = FuseDaemon(
        "lxcfs", ["lxcfs", "-f", "-l", "--enable-cfs", "-p", str(tmp_path / f"{name}.pid"), str(mp)], mp, log_path
    )
    attach_log(request, f"lxcfs log ({mp})", log_path, d)
    return d


@pytest.fixture
def lxcfs_mount(request, tmp_path):
    """A running `lxcfs -f -l --enable-cfs` on a fresh temporary mountpoint."""
    d = _lxcfs_daemon(request, tmp_path, "lxcfs")
    try:
        yield d.start()
    finally:
        d.stop()


@pytest.fixture
def runc_container(tmp_path):
    """Factory fixture: runc_container(args, detach=..., memory=..., views_from=...)."""
    factory = ContainerFactory(tmp_path)
    try:
        yield factory
    finally:
        errors = factory.cleanup()
        if errors:
            pytest.fail("container cleanup: " + "; ".join(errors), pytrace=False)
