"""Injection planning, OCI state parsing and watch policy: pure functions, table-driven."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from containerfs import cli
from containerfs.host.mounttable import mount_source
from containerfs.inject.commands import docker_args
from containerfs.inject.hook import HookError, hook_process, parse_state, rootfs_prefix
from containerfs.inject.plan import Action, Step, container_path, plan_attach, plan_detach, plan_heal
from containerfs.inject.policy import WatchPolicy
from containerfs.inject.service import record_path
from containerfs.procfs.mountinfo import Mount, parse_mountinfo
from containerfs.views.registry import VIEWS

SRC = "containerfs:/var/lib/containerfs"
LIVE, OLD = "0:77", "0:51"


def ours(target: str, dev: str, view: str = "proc/meminfo", source: str = SRC) -> Mount:
    return Mount(target, "fuse.containerfs", source, dev, "/" + view)


def actions(steps: list[Step]) -> dict[str, Action]:
    return {step.target: step.action for step in steps}


PROC = Mount("/proc", "proc", "proc", "0:22", "/")


@pytest.mark.parametrize(
    ("mounts", "prefix", "expected"),
    [
        ([PROC], "", {"/proc/meminfo": Action.ATTACH, "/sys/devices/system/cpu/online": Action.ATTACH}),
        ([PROC, ours("/proc/meminfo", LIVE)], "", {"/proc/meminfo": Action.KEEP, "/proc/stat": Action.ATTACH}),
        ([PROC, ours("/proc/meminfo", OLD)], "", {"/proc/meminfo": Action.REPLACE}),
        # Stacked: the topmost (last) mount decides.
        ([ours("/proc/meminfo", OLD), ours("/proc/meminfo", LIVE)], "", {"/proc/meminfo": Action.KEEP}),
        ([ours("/proc/meminfo", LIVE), ours("/proc/meminfo", OLD)], "", {"/proc/meminfo": Action.REPLACE}),
        # Another daemon's view (another mountpoint) is not ours to keep or replace.
        ([ours("/proc/meminfo", LIVE, source="lxcfs")], "", {"/proc/meminfo": Action.ATTACH}),
        ([ours("/proc/meminfo", LIVE, source="containerfs:/elsewhere")], "", {"/proc/meminfo": Action.ATTACH}),
        # Before pivot_root the targets lie under the rootfs.
        ([ours("/b/rootfs/proc/meminfo", LIVE)], "/b/rootfs", {"/b/rootfs/proc/meminfo": Action.KEEP}),
        ([], "/b/rootfs/", {"/b/rootfs/proc/cpuinfo": Action.ATTACH}),
    ],
)
def test_plan_attach(mounts: list[Mount], prefix: str, expected: dict[str, Action]) -> None:
    steps = plan_attach(mounts, SRC, LIVE, VIEWS, prefix)
    assert len(steps) == len(VIEWS)
    assert {k: v for k, v in actions(steps).items() if k in expected} == expected


def test_plan_attach_limited_to_chosen_views() -> None:
    steps = plan_attach([], SRC, LIVE, ["proc/uptime"])
    assert steps == [Step("proc/uptime", "/proc/uptime", Action.ATTACH)]


@pytest.mark.parametrize(
    ("mounts", "expected"),
    [
        ([PROC], []),
        ([ours("/proc/meminfo", LIVE)], []),
        ([ours("/proc/meminfo", OLD)], [Step("proc/meminfo", "/proc/meminfo", Action.REPLACE)]),
        # A container that chose only some views keeps its choice; a view bound elsewhere
        # stays where it is.
        (
            [ours("/proc/meminfo", LIVE), ours("/data/cpus", OLD, "sys/devices/system/cpu/online")],
            [Step("sys/devices/system/cpu/online", "/data/cpus", Action.REPLACE)],
        ),
        ([ours("/proc/meminfo", OLD, source="lxcfs")], []),
    ],
)
def test_plan_heal(mounts: list[Mount], expected: list[Step]) -> None:
    assert plan_heal(mounts, SRC, LIVE) == expected


def test_plan_detach_takes_every_stacked_view_topmost_first() -> None:
    mounts = [PROC, ours("/proc/meminfo", OLD), ours("/proc/stat", LIVE, "proc/stat"), ours("/proc/meminfo", LIVE)]
    assert plan_detach(mounts, SRC) == [
        Step("proc/meminfo", "/proc/meminfo", Action.DETACH),
        Step("proc/stat", "/proc/stat", Action.DETACH),
        Step("proc/meminfo", "/proc/meminfo", Action.DETACH),
    ]


def test_views_mirror_the_files_they_replace() -> None:
    assert {container_path(v) for v in VIEWS} >= {"/proc/meminfo", "/sys/devices/system/cpu/online"}


def test_mountinfo_carries_device_and_root() -> None:
    line = (
        "612 580 0:77 /proc/meminfo /proc/meminfo ro,nosuid,nodev,relatime master:1 - "
        "fuse.containerfs containerfs:/var/lib/containerfs ro,user_id=0,group_id=0,allow_other\n"
    )
    assert parse_mountinfo(line) == [ours("/proc/meminfo", LIVE)]


@pytest.mark.parametrize(
    ("mountpoint", "source"),
    [
        ("/var/lib/containerfs", "containerfs:/var/lib/containerfs"),
        ("/a,b", "containerfs:/a\\,b"),  # libfuse splits options at unescaped commas
    ],
)
def test_mount_source_names_the_mountpoint(mountpoint: str, source: str) -> None:
    assert mount_source(mountpoint) == source


def _bundle(tmp_path: Path, config: dict) -> str:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_parse_state_reads_rootfs_and_annotations(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, {"root": {"path": "rootfs"}, "annotations": {"a": "1", "io.containerfs.skip": "no"}})
    state = json.dumps({"id": "c1", "pid": 42, "bundle": bundle, "annotations": {"io.containerfs.skip": "True"}})
    parsed = parse_state(state)
    assert (parsed.id, parsed.pid, parsed.rootfs) == ("c1", 42, str(tmp_path / "rootfs"))
    assert parsed.annotations == {"a": "1", "io.containerfs.skip": "True"}  # the state's annotations win
    assert parsed.opted_out


@pytest.mark.parametrize(("value", "skip"), [("true", True), ("1", True), ("yes", True), ("false", False), ("", False)])
def test_skip_annotation(tmp_path: Path, value: str, skip: bool) -> None:
    bundle = _bundle(tmp_path, {"root": {"path": "/abs/root"}, "annotations": {"io.containerfs.skip": value}})
    parsed = parse_state(json.dumps({"pid": 1, "bundle": bundle}))
    assert parsed.rootfs == "/abs/root"
    assert parsed.opted_out is skip


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("not json", "not an OCI state"),
        ('{"bundle": "/x"}', "not an OCI state"),
        ('{"pid": "x", "bundle": "/x"}', "not an OCI state"),
        ('{"pid": 5, "bundle": "/nonexistent-bundle"}', "cannot read the bundle's config.json"),
    ],
)
def test_parse_state_rejects_bad_input(state: str, message: str) -> None:
    with pytest.raises(HookError, match=message):
        parse_state(state)


def test_hook_process_inside_the_container_is_self() -> None:
    # runc reports a createContainer hook's container by its init's pid in there: our parent.
    assert hook_process(os.getppid()) == "self"
    assert hook_process(os.getppid() + 100000) == os.getppid() + 100000


def test_rootfs_prefix_before_and_after_pivot_root() -> None:
    before = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:1 /b/rootfs /b/rootfs rw - ext4 /dev/sda1 rw\n")
    assert rootfs_prefix(before, "/b/rootfs") == "/b/rootfs"
    after = parse_mountinfo("1 0 8:1 /b/rootfs / rw - ext4 /dev/sda1 rw\n")
    assert rootfs_prefix(after, "/b/rootfs") == ""


@pytest.mark.parametrize(
    ("policy", "cgroup", "admitted"),
    [
        (WatchPolicy(), "/docker/0123abcd", True),
        (WatchPolicy(), "/kubepods/burstable/pod1/abc", True),
        (WatchPolicy(), "/", False),  # a root cgroup: a sandbox, not a container with limits
        (WatchPolicy(), "", False),
        (WatchPolicy(), "/user.slice/user-1000.slice/app-flatpak.scope", False),
        (WatchPolicy(include=("/system.slice/docker-*",)), "/system.slice/docker-ab.scope", True),
        (WatchPolicy(include=("/system.slice/docker-*",)), "/kubepods/x", False),
        (WatchPolicy(exclude=("/kubepods/*",)), "/kubepods/x", False),
        (WatchPolicy(exclude=()), "/user.slice/u", True),
    ],
)
def test_watch_policy(policy: WatchPolicy, cgroup: str, admitted: bool) -> None:
    assert policy.admits(cgroup) is admitted


@pytest.mark.parametrize(
    ("options", "cgroup", "admitted"),
    [
        ([], "/user.slice", False),
        ([], "/user.slice/user-1000.slice/app-flatpak.scope", False),  # a desktop sandbox
        ([], "/user.slices/x", True),  # only starts like a user session
        ([], "/system.slice/docker-ab.scope", True),
        (["--watch-exclude", "/kubepods/*"], "/user.slice/user-1000.slice/x", True),  # replaces the default
        (["--watch-exclude", "/kubepods/*"], "/kubepods/x", False),
    ],
)
def test_the_watchers_default_exclude_is_user_sessions(options: list[str], cgroup: str, admitted: bool) -> None:
    policy = cli._watch_policy(cli._parser().parse_args(["mount", "--watch", *options, "/mnt"]))
    assert policy is not None and policy.admits(cgroup) is admitted


@pytest.mark.parametrize(
    ("mountpoint", "name"),
    [
        ("/var/lib/containerfs", "var-lib-containerfs.detached.json"),
        ("/srv/my-views", "srv-my\\x2dviews.detached.json"),  # systemd-escape style: no two collide
        ("/", "-.detached.json"),
    ],
)
def test_record_path(mountpoint: str, name: str) -> None:
    assert record_path("/run/containerfs", mountpoint) == f"/run/containerfs/{name}"


def test_docker_args_bind_every_view_read_only() -> None:
    args = docker_args("/var/lib/containerfs").split()
    assert args[0::2] == ["-v"] * (
        len(VIEWS) - 7
    )  # proc/vmstat, pressure/* and the cpu files out, the cpu directory in
    assert not any("/proc/pressure/" in arg for arg in args)  # nor these
    assert "/var/lib/containerfs/proc/meminfo:/proc/meminfo:ro" in args[1::2]
    assert "/var/lib/containerfs/sys/devices/system/cpu:/sys/devices/system/cpu:ro" in args[1::2]
    assert not any("vmstat" in arg for arg in args)  # runc refuses that spec mount


def test_a_target_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    from containerfs.inject.namespace import apply_step

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "meminfo").write_text("")
    (tmp_path / "proc").symlink_to(tmp_path / "elsewhere")
    step = Step("proc/meminfo", str(tmp_path / "proc" / "meminfo"), Action.ATTACH)
    outcome = apply_step(step, tree_fd=-1)  # refused before the (invalid) tree is touched
    assert (outcome.done, outcome.error, outcome.failed) == (False, "reached through a symlink: refused", True)
    missing = Step("proc/meminfo", str(tmp_path / "nothing" / "meminfo"), Action.ATTACH)
    assert apply_step(missing, tree_fd=-1).result == "absent"


def test_shipped_hooks_d_file_runs_the_oci_hook() -> None:
    from containerfs.cli import _parser

    repo = Path(__file__).resolve().parents[2]
    spec = json.loads((repo / "packaging" / "oci" / "containerfs.json").read_text())
    assert spec["version"] == "1.0.0"
    assert set(spec["stages"]) <= {"prestart", "createRuntime", "createContainer"}
    assert spec["when"] == {"always": True}  # the opt-out is the hook's own annotation check
    args = _parser().parse_args(spec["hook"]["args"][1:])
    assert (args.command, args.mountpoint, args.require_daemon) == ("oci-hook", "/var/lib/containerfs", False)


def test_enosys_means_the_kernel_lacks_the_mount_api() -> None:
    import ctypes

    from containerfs.inject import syscalls

    result = syscalls._libc.syscall(-1)  # no such syscall: ENOSYS, like open_tree on Linux < 5.2
    assert ctypes.get_errno() == errno.ENOSYS
    with pytest.raises(syscalls.MountApiMissing, match=r"Linux >= 5\.2"):
        syscalls._check(result, "open_tree")


@pytest.mark.parametrize("content", ["not json", "[{}]", '{"a": 1}', '[{"pid": "x"}]'])
def test_a_damaged_clean_stop_record_is_ignored_once(tmp_path: Path, content: str) -> None:
    from containerfs.inject.service import InjectionService

    service = InjectionService("/var/lib/containerfs", "/proc", str(tmp_path), None)
    Path(service.record).write_text(content)
    assert service._take_record() == []
    assert not Path(service.record).exists()


def test_clean_stop_record_round_trip(tmp_path: Path) -> None:
    from containerfs.inject.service import InjectionService, Taken

    service = InjectionService("/var/lib/containerfs", "/proc", str(tmp_path), None)
    entry = Taken(42, "mnt:[4026532298]", 123456, ["proc/meminfo", "proc/stat"])
    Path(service.record).write_text(json.dumps([entry._asdict()]))
    assert service._take_record() == [entry]
