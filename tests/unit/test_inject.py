"""Injection planning, OCI state parsing and watch policy: pure functions, table-driven."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from containerfs import cli
from containerfs.host.mounttable import mount_source
from containerfs.inject.hook import HookError, hook_process, parse_state, rootfs_prefix
from containerfs.inject.plan import (
    Action,
    Step,
    UnsafeStep,
    check_step,
    container_path,
    plan_attach,
    plan_detach,
    plan_heal,
)
from containerfs.inject.policy import WatchPolicy, declined, markers_from_environment
from containerfs.inject.service import record_path
from containerfs.procfs.mountinfo import Mount, parse_mountinfo
from containerfs.procfs.process import parse_environ
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
        # A mount of the container's own at a target (an lxcfs bind, another daemon's view):
        # never stacked over.
        ([ours("/proc/meminfo", LIVE, source="lxcfs")], "", {"/proc/meminfo": Action.LEAVE}),
        ([ours("/proc/meminfo", LIVE, source="containerfs:/elsewhere")], "", {"/proc/meminfo": Action.LEAVE}),
        ([Mount("/proc/stat", "ext4", "/dev/sda1", "8:1", "/x")], "", {"/proc/stat": Action.LEAVE}),
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
        # is never touched: views go only at their own targets.
        (
            [ours("/proc/meminfo", LIVE), ours("/data/cpus", OLD, "sys/devices/system/cpu/online")],
            [],
        ),
        (
            [ours("/proc/meminfo", LIVE), ours("/proc/stat", OLD, "proc/stat")],
            [Step("proc/stat", "/proc/stat", Action.REPLACE)],
        ),
        # A copy of the whole mountpoint (`-v /var/lib:/x`, `unshare -m` on the host): no view.
        ([Mount("/x/containerfs", "fuse.containerfs", SRC, OLD, "/")], []),
        ([Mount("/", "fuse.containerfs", SRC, OLD, "/")], []),
        ([Mount("/rootfs/proc", "fuse.containerfs", SRC, OLD, "/proc")], []),
        ([ours("/proc/meminfo", OLD, source="lxcfs")], []),
    ],
)
def test_plan_heal(mounts: list[Mount], expected: list[Step]) -> None:
    assert plan_heal(mounts, SRC, LIVE, VIEWS) == expected


def test_plan_detach_takes_every_stacked_view_of_its_own_device_topmost_first() -> None:
    mounts = [
        PROC,
        ours("/proc/meminfo", LIVE),
        ours("/proc/stat", LIVE, "proc/stat"),
        ours("/proc/meminfo", OLD),  # same source, another daemon's device: not ours
        ours("/proc/meminfo", LIVE),
        Mount("/rootfs/var/lib/containerfs", "fuse.containerfs", SRC, LIVE, "/"),  # a whole copy
        Mount("/x/proc", "fuse.containerfs", SRC, LIVE, "/proc"),  # a part of it
    ]
    assert plan_detach(mounts, SRC, LIVE, VIEWS) == [
        Step("proc/meminfo", "/proc/meminfo", Action.DETACH),
        Step("proc/stat", "/proc/stat", Action.DETACH),
        Step("proc/meminfo", "/proc/meminfo", Action.DETACH),
    ]


def test_plan_detach_never_takes_a_newer_daemons_views() -> None:
    # The old daemon stops while a new one on the same mountpoint (same source) serves.
    assert plan_detach([ours("/proc/meminfo", LIVE), ours("/proc/stat", LIVE, "proc/stat")], SRC, OLD, VIEWS) == []


@pytest.mark.parametrize(
    "step",
    [
        Step("", "/", Action.ATTACH),  # the whole mountpoint over a namespace's root
        Step("", "/", Action.REPLACE),
        Step("", "/", Action.DETACH),
        Step("proc/meminfo", "/", Action.ATTACH),
        Step("proc/meminfo", "/etc/passwd", Action.ATTACH),
        Step("proc/meminfo", "proc/meminfo", Action.ATTACH),  # relative
        Step("proc/meminfo", "/x/../proc/meminfo", Action.ATTACH),
        Step("../proc/meminfo", "/proc/../proc/meminfo", Action.REPLACE),
        Step("/proc/meminfo", "/proc/meminfo", Action.ATTACH),
        Step("proc", "/proc", Action.ATTACH),  # a directory of views, not a view the daemon serves
        Step("proc/./meminfo", "/proc/./meminfo", Action.ATTACH),
    ],
)
def test_check_step_refuses_anything_but_a_view_at_its_target(step: Step) -> None:
    with pytest.raises(UnsafeStep):
        check_step(step, VIEWS)


@pytest.mark.parametrize(
    "step",
    [
        Step("proc/meminfo", "/proc/meminfo", Action.ATTACH),
        Step("proc/meminfo", "/b/rootfs/proc/meminfo", Action.ATTACH),  # before pivot_root
        Step("sys/devices/system/cpu/online", "/sys/devices/system/cpu/online", Action.REPLACE),
        Step("proc/stat", "/proc/stat", Action.DETACH),
    ],
)
def test_check_step_admits_a_view_at_its_target(step: Step) -> None:
    check_step(step, VIEWS)


def test_a_file_in_a_directory_view_is_served() -> None:
    # The cpu directory is bound whole; a container bound its online file by hand.
    served = ("proc/meminfo", "sys/devices/system/cpu")
    check_step(Step("sys/devices/system/cpu/online", "/sys/devices/system/cpu/online", Action.REPLACE), served)
    stale = ours("/sys/devices/system/cpu/online", OLD, "sys/devices/system/cpu/online")
    assert plan_heal([stale], SRC, LIVE, served) == [
        Step("sys/devices/system/cpu/online", "/sys/devices/system/cpu/online", Action.REPLACE)
    ]
    with pytest.raises(UnsafeStep):
        check_step(Step("sys/devices/system", "/sys/devices/system", Action.REPLACE), served)


def test_carry_out_refuses_unsafe_steps_without_touching_anything(tmp_path: Path) -> None:
    from containerfs.inject.attach import ViewSource, carry_out

    source = ViewSource(str(tmp_path), SRC, LIVE, tuple(VIEWS))
    # Our own namespace is the host's: if a step got through, the host namespace guard would raise.
    outcomes = carry_out(
        source, os.getpid(), [Step("", "/", Action.ATTACH), Step("proc/stat", "/etc", Action.REPLACE)], "/proc"
    )
    assert [o.failed for o in outcomes] == [True, True]
    assert all(o.error.startswith("refused:") for o in outcomes)


@pytest.mark.parametrize("pid", [2, "self", os.getpid(), os.getppid()])
def test_carry_out_never_enters_the_host_namespace(tmp_path: Path, pid: int | str) -> None:
    from containerfs.inject.attach import HostNamespace, ViewSource, carry_out, is_host_namespace

    assert is_host_namespace(pid, "/proc")
    source = ViewSource(str(tmp_path), SRC, LIVE, tuple(VIEWS))
    with pytest.raises(HostNamespace):
        carry_out(source, pid, [Step("proc/meminfo", "/proc/meminfo", Action.DETACH)], "/proc")


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
    assert declined(parsed.annotations, "/var/lib/containerfs")


@pytest.mark.parametrize(("value", "skip"), [("true", True), ("1", True), ("yes", True), ("false", False), ("", False)])
def test_skip_annotation(tmp_path: Path, value: str, skip: bool) -> None:
    bundle = _bundle(tmp_path, {"root": {"path": "/abs/root"}, "annotations": {"io.containerfs.skip": value}})
    parsed = parse_state(json.dumps({"pid": 1, "bundle": bundle}))
    assert parsed.rootfs == "/abs/root"
    assert bool(declined(parsed.annotations, "/var/lib/containerfs")) is skip


@pytest.mark.parametrize(
    ("annotations", "mountpoint", "declines"),
    [
        ({}, "/var/lib/containerfs", False),
        ({"io.containerfs.mountpoint": "/var/lib/containerfs"}, "/var/lib/containerfs", False),
        ({"io.containerfs.mountpoint": "/var/lib/containerfs/"}, "/var/lib/containerfs", False),
        ({"io.containerfs.mountpoint": "/tmp/test-mnt"}, "/var/lib/containerfs", True),
        ({"io.containerfs.mountpoint": "/tmp/pytest-1/*"}, "/tmp/pytest-1/containerfs0", False),
        ({"io.containerfs.mountpoint": "/tmp/pytest-1/*"}, "/var/lib/containerfs", True),
        (
            {"io.containerfs.mountpoint": "/var/lib/containerfs", "io.containerfs.skip": "on"},
            "/var/lib/containerfs",
            True,
        ),
    ],
)
def test_declined_by_skip_or_another_mountpoint(annotations: dict, mountpoint: str, declines: bool) -> None:
    assert bool(declined(annotations, mountpoint)) is declines


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("not json", "not an OCI state"),
        ('{"bundle": "/x"}', "not an OCI state"),
        ('{"pid": "x", "bundle": "/x"}', "not an OCI state"),
        ('{"pid": 5, "bundle": "/nonexistent-bundle"}', "cannot read the bundle's config.json"),
        ("[1, 2]", "not an OCI state"),
        ('{"pid": 5, "bundle": 7}', "not an OCI state"),
        ('{"pid": 0, "bundle": "/x"}', "not an OCI state"),
        ('{"pid": 5, "bundle": "/b", "annotations": ["x"]}', "annotations are not a JSON object"),
    ],
)
def test_parse_state_rejects_bad_input(state: str, message: str) -> None:
    with pytest.raises(HookError, match=message):
        parse_state(state, read_config=None if "nonexistent" in state else lambda path: {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "not a JSON object"),
        ({"annotations": "x"}, "annotations are not a JSON object"),
        ({"annotations": ["io.containerfs.skip"]}, "annotations are not a JSON object"),
        ({"root": "rootfs"}, "no valid root.path"),
        ({"root": {"path": 5}}, "no valid root.path"),
        ({"root": {"path": ""}}, "no valid root.path"),
    ],
)
def test_parse_state_rejects_a_bad_config(config: object, message: str) -> None:
    with pytest.raises(HookError, match=message):
        parse_state('{"pid": 5, "bundle": "/b"}', read_config=lambda path: config)


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
    from containerfs.inject.attach import ViewSource
    from containerfs.inject.commands import docker_flags
    from containerfs.views.overlays import bind_targets

    args = docker_flags(ViewSource("/var/lib/containerfs", SRC, LIVE, tuple(bind_targets(VIEWS)))).split()
    assert args[0::2] == ["-v"] * (len(VIEWS) - 7)  # proc/vmstat, pressure/* and the cpu files out
    assert not any("/proc/pressure/" in arg for arg in args)  # runc refuses those too
    assert "/var/lib/containerfs/proc/meminfo:/proc/meminfo:ro" in args[1::2]
    assert "/var/lib/containerfs/sys/devices/system/cpu:/sys/devices/system/cpu:ro" in args[1::2]
    assert not any("vmstat" in arg for arg in args)  # runc refuses that spec mount


def test_docker_args_without_a_daemon_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from containerfs.cli import main

    assert main(["docker-args", "--mountpoint", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "no containerfs daemon serves" in err


def test_oci_hook_fails_open_on_a_malformed_state(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import io

    from containerfs.inject.commands import oci_hook

    log_file = tmp_path / "hook.log"
    bundle = _bundle(tmp_path, {"annotations": ["not", "a", "map"]})
    state = io.StringIO(json.dumps({"pid": 5, "bundle": bundle}))
    assert oci_hook(str(tmp_path / "mnt"), False, "/proc", state, str(log_file)) == 0
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "annotations are not a JSON object" in err
    assert "annotations are not a JSON object" in log_file.read_text()
    state = io.StringIO(json.dumps({"pid": 5, "bundle": bundle}))
    assert oci_hook(str(tmp_path / "mnt"), True, "/proc", state, str(log_file)) == 1


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


def test_every_install_route_provides_the_binary_the_hook_files_run() -> None:
    import re

    repo = Path(__file__).resolve().parents[2]
    oci = json.loads((repo / "packaging" / "oci" / "containerfs.json").read_text())["hook"]["path"]
    lxc = re.search(
        r'exec "\$\{CONTAINERFS:-([^}]+)\}"', (repo / "packaging" / "lxc" / "containerfs-mount-hook").read_text()
    )
    install = (repo / "scripts" / "install.sh").read_text()
    spec = (repo / "packaging" / "rpm" / "containerfs.spec").read_text()
    assert lxc is not None
    assert oci == lxc.group(1) == "/usr/bin/containerfs"
    assert "BIN=/usr/bin/containerfs" in install and 'ln -sfn "$PREFIX/bin/containerfs" "$BIN"' in install
    assert "%{buildroot}%{_bindir}/containerfs" in spec
    # install.sh puts the hook files where the RPM does.
    for path in ("/usr/share/containers/oci/hooks.d/containerfs.json", "/usr/share/containerfs/lxc-mount-hook"):
        assert path in install


def test_annotations_from_the_runtime_state(tmp_path: Path) -> None:
    from containerfs.inject.runtime_state import annotations_of

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"annotations": {"io.containerfs.skip": "true", "a": "b"}}))
    runc = tmp_path / "docker" / "runtime-runc" / "moby" / "c1"
    runc.mkdir(parents=True)
    labels = [f"bundle={tmp_path / 'none'}", "io.containerfs.mountpoint=/x", "junk"]
    (runc / "state.json").write_text(json.dumps({"init_process_pid": 100, "config": {"labels": labels}}))
    crun = tmp_path / "crun" / "c2"
    crun.mkdir(parents=True)
    (crun / "status").write_text(json.dumps({"pid": 200, "bundle": str(bundle)}))
    (tmp_path / "runc" / "broken").mkdir(parents=True)
    (tmp_path / "runc" / "broken" / "state.json").write_text("{not json")
    assert annotations_of(100, str(tmp_path)) == {"io.containerfs.mountpoint": "/x"}
    assert annotations_of(200, str(tmp_path)) == {"io.containerfs.skip": "true", "a": "b"}
    assert annotations_of(300, str(tmp_path)) is None  # no runtime knows it (yet)


def test_parse_locks_keeps_held_locks_by_device_and_inode() -> None:
    from containerfs.procfs.locks import FileLock, parse_locks

    text = (
        "1: FLOCK  ADVISORY  WRITE 22089 fe:00:2326586 0 EOF\n"
        "1: -> FLOCK  ADVISORY  WRITE 3001 fe:00:2326586 0 EOF\n"  # a waiter holds nothing
        "2: POSIX  ADVISORY  READ 1234 00:1a:77 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 1 garbage 0 EOF\n"
        "short line\n"
    )
    assert parse_locks(text) == [FileLock("FLOCK", 0xFE, 0, 2326586), FileLock("POSIX", 0, 0x1A, 77)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("PATH=/bin\0HOME=/\0", {"PATH": "/bin", "HOME": "/"}),
        ("A=b=c\0noequals\0EMPTY=\0", {"A": "b=c", "EMPTY": ""}),
    ],
)
def test_parse_environ(text: str, expected: dict) -> None:
    assert parse_environ(text) == expected


@pytest.mark.parametrize(
    ("environment", "mountpoint", "declines"),
    [
        ({"PATH": "/bin"}, "/var/lib/containerfs", False),
        ({"CONTAINERFS_SKIP": "true"}, "/var/lib/containerfs", True),
        ({"CONTAINERFS_SKIP": "0"}, "/var/lib/containerfs", False),
        ({"CONTAINERFS_VIEWS_FROM": "/tmp/cfseng-x/*"}, "/var/lib/containerfs", True),
        ({"CONTAINERFS_VIEWS_FROM": "/tmp/cfseng-x/*"}, "/tmp/cfseng-x/mp-routes", False),
    ],
)
def test_environment_markers_decline_like_annotations(environment: dict, mountpoint: str, declines: bool) -> None:
    assert bool(declined(markers_from_environment(environment), mountpoint)) is declines


def test_the_hook_reads_markers_from_the_process_environment_and_annotations_win(tmp_path: Path) -> None:
    config: dict[str, Any] = {"process": {"env": ["PATH=/bin", "CONTAINERFS_SKIP=true", 7]}, "annotations": {}}
    parsed = parse_state(json.dumps({"pid": 1, "bundle": _bundle(tmp_path, config)}))
    assert declined(parsed.annotations, "/var/lib/containerfs")
    config["annotations"] = {"io.containerfs.skip": "false"}
    parsed = parse_state(json.dumps({"pid": 1, "bundle": _bundle(tmp_path, config)}))
    assert not declined(parsed.annotations, "/var/lib/containerfs")
    config["process"] = {"env": "not a list"}
    parsed = parse_state(json.dumps({"pid": 1, "bundle": _bundle(tmp_path, config)}))
    assert parsed.annotations == {"io.containerfs.skip": "false"}
