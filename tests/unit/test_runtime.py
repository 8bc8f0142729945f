"""containerfs-runtime's pure parts: the command line, the configuration, the bundle edit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from containerfs.runtime.cmdline import Invocation, parse_invocation
from containerfs.runtime.config import ConfigError, RuntimeConfig, load_config, parse_conf, resolve_config
from containerfs.runtime.spec import HOOK_STAGE, NOTIFY, Plan, edit_spec

LISTENER = "/run/containerfs/sysinfo-listener/var-lib-containerfs.sock"
HOOK = ["/usr/bin/containerfs", "oci-hook", "--mountpoint", "/var/lib/containerfs"]
MOUNTPOINT = "/var/lib/containerfs"
PLAN = Plan(MOUNTPOINT, HOOK, LISTENER, architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"))
SYSINFO_RULE = {"names": ["sysinfo"], "action": NOTIFY}
SHIM_ARGV = ["--root", "/r", "--log", "/l.json", "--log-format", "json", "--systemd-cgroup", "create"]
SHIM_ARGV += ["--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "id"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["create", "--bundle", "/b", "id"], Invocation("create", "/b")),
        (["run", "-b", "/b", "-d", "id"], Invocation("run", "/b")),
        (["run", "--bundle=/b", "id"], Invocation("run", "/b")),
        (["-b=/b"], Invocation(None, None)),
        (["run", "--detach", "id"], Invocation("run", None)),  # the working directory
        # containerd's shim: global options with values before the command.
        (SHIM_ARGV, Invocation("create", "/b")),
        (["--root=/r", "--debug", "run", "--pid-file", "-b", "id"], Invocation("run", None)),  # -b is the pid file
        (["create", "--", "--bundle"], Invocation("create", None)),
        (["start", "--bundle", "/b", "id"], Invocation("start", None)),  # not edited
        (["exec", "id", "sh"], Invocation("exec", None)),
        (["--version"], Invocation(None, None)),
        ([], Invocation(None, None)),
        (["create", "--bundle"], Invocation("create", None)),
    ],
)
def test_parse_invocation(argv: list[str], expected: Invocation) -> None:
    assert parse_invocation(argv) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("# comment\n\nCONTAINERFS_RUNTIME=crun\n", {"CONTAINERFS_RUNTIME": "crun"}),
        ('CONTAINERFS_MOUNTPOINT="/srv/with space"\n', {"CONTAINERFS_MOUNTPOINT": "/srv/with space"}),
        ("  CONTAINERFS_RUN_DIR = /run/x  \n", {"CONTAINERFS_RUN_DIR": "/run/x"}),
    ],
)
def test_parse_conf(text: str, expected: dict[str, str]) -> None:
    assert parse_conf(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "RUNTIME=crun",
        "CONTAINERFS_RUNTIME",
        "CONTAINERFS_RUNTIME=a b",
        "CONTAINERFS_RUNTIME='open",
        "CONTAINERFS_RUN_DIR=",
    ],
)
def test_parse_conf_refuses_bad_lines(text: str) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        parse_conf(text)


def test_environment_wins_over_file_over_defaults() -> None:
    file_values = {"CONTAINERFS_RUNTIME": "crun", "CONTAINERFS_RUN_DIR": "/run/f"}
    env = {"CONTAINERFS_RUNTIME": "runc", "CONTAINERFS_MOUNTPOINT": ""}
    assert resolve_config(file_values, env) == RuntimeConfig("runc", "/var/lib/containerfs", "/run/f")
    assert resolve_config({}, {}) == RuntimeConfig()


def test_load_config_reads_the_injected_file(tmp_path: Path) -> None:
    conf = tmp_path / "runtime.conf"
    conf.write_text("CONTAINERFS_RUNTIME=crun\n")
    assert load_config({"CONTAINERFS_RUNTIME_CONFIG": str(conf)}).runtime == "crun"
    assert load_config({"CONTAINERFS_RUNTIME_CONFIG": str(tmp_path / "none")}) == RuntimeConfig()
    conf.write_text("bogus\n")
    with pytest.raises(ConfigError, match=str(conf)):
        load_config({"CONTAINERFS_RUNTIME_CONFIG": str(conf)})


def base_spec(**linux: Any) -> dict[str, Any]:
    return {"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": [], **linux}}


DOCKER_LIKE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["read", "sysinfo", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}
DENY_MKDIR = {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}


def seccomp_of(spec: dict[str, Any]) -> dict[str, Any] | None:
    return spec["linux"].get("seccomp")


@pytest.mark.parametrize(
    ("seccomp", "expected", "note"),
    [
        # No profile: one that allows everything and sends sysinfo to us.
        (
            None,
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [SYSINFO_RULE],
                "listenerPath": LISTENER,
                "listenerMetadata": "containerfs sysinfo",
            },
            None,
        ),
        # An allow-all profile with its own rules: kept, the rule appended.
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [DENY_MKDIR]},
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [DENY_MKDIR, SYSINFO_RULE],
                "listenerPath": LISTENER,
                "listenerMetadata": "containerfs sysinfo",
            },
            None,
        ),
        # Docker's default: a whitelist naming sysinfo; its allow becomes our notify.
        (
            DOCKER_LIKE,
            {
                **DOCKER_LIKE,
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    DOCKER_LIKE["syscalls"][1],
                    SYSINFO_RULE,
                ],
                "listenerPath": LISTENER,
                "listenerMetadata": "containerfs sysinfo",
            },
            None,
        ),
        # A rule that allows only sysinfo: replaced, not left empty.
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ALLOW"}]},
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [SYSINFO_RULE],
                "listenerPath": LISTENER,
                "listenerMetadata": "containerfs sysinfo",
            },
            None,
        ),
        # The profile denies sysinfo: by a rule, by its default, or notifies someone else.
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO"}]},
            "unchanged",
            "own rule for sysinfo",
        ),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [DENY_MKDIR]}, "unchanged", "denies sysinfo"),
        ({"defaultAction": "SCMP_ACT_KILL"}, "unchanged", "denies sysinfo"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/other.sock", "syscalls": []},
            "unchanged",
            "/run/other.sock",
        ),
        # A conditional allow for sysinfo: we cannot say which calls it meant.
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "x"}]}],
            },
            "unchanged",
            "own rule for sysinfo",
        ),
    ],
)
def test_sysinfo_rule(seccomp: dict[str, Any] | None, expected: Any, note: str | None) -> None:
    spec = base_spec() if seccomp is None else base_spec(seccomp=copy.deepcopy(seccomp))
    before = copy.deepcopy(spec)
    edit = edit_spec(spec, PLAN)
    assert spec == before  # the input is never changed in place
    assert edit.changed  # the hook is always added here
    if expected == "unchanged":
        assert seccomp_of(edit.spec) == seccomp
        assert len(edit.notes) == 1 and note is not None and note in edit.notes[0]
    else:
        assert seccomp_of(edit.spec) == expected
        assert edit.notes == []
    assert edit.spec["hooks"] == {HOOK_STAGE: [{"path": HOOK[0], "args": HOOK}]}


def test_existing_hooks_and_fields_are_kept() -> None:
    theirs = {"path": "/usr/bin/nvidia-ctk", "args": ["nvidia-ctk", "hook"]}
    spec = {**base_spec(), "hooks": {HOOK_STAGE: [theirs], "poststop": [theirs]}, "annotations": {"a": "b"}}
    edit = edit_spec(spec, PLAN)
    assert edit.spec["hooks"] == {HOOK_STAGE: [theirs, {"path": HOOK[0], "args": HOOK}], "poststop": [theirs]}
    assert edit.spec["annotations"] == {"a": "b"} and edit.spec["process"] == spec["process"]


def test_editing_twice_changes_nothing_more() -> None:
    once = edit_spec(base_spec(seccomp=copy.deepcopy(DOCKER_LIKE)), PLAN).spec
    again = edit_spec(once, PLAN)
    assert not again.changed and again.spec == once
    assert any("already" in n for n in again.notes)


def test_a_hooks_d_hook_is_not_doubled() -> None:
    spec = {
        **base_spec(),
        "hooks": {"prestart": [{"path": "/usr/local/bin/containerfs", "args": ["containerfs", "oci-hook"]}]},
    }
    edit = edit_spec(spec, Plan(MOUNTPOINT, HOOK, None))
    assert not edit.changed and edit.spec is spec


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", " on "])
def test_opt_out_annotation(value: str) -> None:
    spec = {**base_spec(), "annotations": {"io.containerfs.skip": value}}
    edit = edit_spec(spec, PLAN)
    assert not edit.changed and edit.spec is spec


@pytest.mark.parametrize(
    ("wanted", "added"), [("/var/lib/containerfs", True), ("/var/lib/*", True), ("/tmp/pytest-*/*", False)]
)
def test_a_container_may_ask_for_another_daemons_views(wanted: str, added: bool) -> None:
    edit = edit_spec({**base_spec(), "annotations": {"io.containerfs.mountpoint": wanted}}, PLAN)
    assert edit.changed is added
    assert added or "takes its views from" in edit.notes[0]


@pytest.mark.parametrize("value", ["false", "", "0"])
def test_opt_out_needs_a_true_value(value: str) -> None:
    assert edit_spec({**base_spec(), "annotations": {"io.containerfs.skip": value}}, PLAN).changed


def test_nothing_running_nothing_added() -> None:
    spec = base_spec()
    edit = edit_spec(spec, Plan(MOUNTPOINT, None, None))
    assert not edit.changed and edit.spec is spec and "hooks" not in spec


@pytest.mark.parametrize(
    ("spec", "note"),
    [
        ({"linux": {"seccomp": []}}, "not an object"),
        ({"linux": []}, "not an object"),
        ({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}}}, "not a list"),
    ],
)
def test_malformed_seccomp_is_left_to_the_runtime(spec: dict[str, Any], note: str) -> None:
    before = copy.deepcopy(spec)
    edit = edit_spec(spec, PLAN)
    assert spec == before
    assert edit.spec["linux"] == before["linux"]
    assert any(note in n for n in edit.notes), edit.notes


@pytest.mark.parametrize("hooks", [[], {"createRuntime": {}}, "x"])
def test_malformed_hooks_are_left_to_the_runtime(hooks: Any) -> None:
    edit = edit_spec({**base_spec(), "hooks": hooks}, Plan(MOUNTPOINT, HOOK, None))
    assert not edit.changed and edit.spec["hooks"] == hooks
    assert "no views hook" in edit.notes[0]
