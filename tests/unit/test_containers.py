"""Container discovery over the fixture hosts, and naming from cgroup paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from containerfs.containers.discover import ContainerName, container_name, discover
from containerfs.containers.resolve import Container, Resolver, naming_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ID = "8d2f1c4b7a9e3d5f6c1b2a3948576e0f1d2c3b4a5968778695a4b3c2d1e0f9a8"
SHORT = ID[:12]
UID = "6b1f5d3e-2c4a-4e8b-9f0d-7a6c5b4e3d21"
K8S = ContainerName("kubernetes", f"pod6b1f5d3e/{SHORT}", ID, SHORT)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/docker/{ID}", ContainerName("docker", SHORT, ID, SHORT)),
        (f"/system.slice/docker-{ID}.scope", ContainerName("docker", SHORT, ID, SHORT)),
        (f"/system.slice/docker-{ID}.scope/init.scope", ContainerName("docker", SHORT, ID, SHORT)),
        (f"/libpod-{ID}.scope", ContainerName("podman", SHORT, ID, SHORT)),
        (f"/machine.slice/libpod-{ID}.scope", ContainerName("podman", SHORT, ID, SHORT)),
        (f"/libpod_parent/libpod-{ID}", ContainerName("podman", SHORT, ID, SHORT)),
        (f"/kubepods/burstable/pod{UID}/{ID}", K8S),
        (f"/kubepods/pod{UID}/{ID}", K8S),
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{UID.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
            K8S,
        ),
        (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{ID}.scope", K8S),
        (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID}.slice/docker-{ID}.scope", K8S),
        (f"/crio-{ID}.scope", ContainerName("kubernetes", SHORT, ID, SHORT)),
        ("/lxc/web1", ContainerName("lxc", "web1", "web1", "web1")),
        ("/lxc.payload.web1", ContainerName("lxc", "web1", "web1", "web1")),
        ("/lxc.payload.web1/init.scope", ContainerName("lxc", "web1", "web1", "web1")),
        ("/cfstest-1a2b/app", ContainerName("runc", "app", "app", "app")),
        ("/mycontainer", ContainerName("runc", "mycontainer", "mycontainer", "mycontainer")),
        # a 64-hex component under an unknown parent is not docker's
        (f"/custom/{ID}", ContainerName("runc", ID, ID, ID)),
    ],
)
def test_container_name(path: str, expected: ContainerName) -> None:
    assert container_name(path) == expected


WEB, POD_PAUSE, POD_APP, NOLIMIT = 2000, 4000, 4001, 5200
# SCENARIO.md: containers are the inits of non-host pid namespaces, pod members with
# their own mount namespace and cgroup (app 4001 shares pause's pid namespace), and 3000,
# which runs with --pid=host in its own mount namespace; the host processes are not.
HOSTPID = 3000
EXPECTED = {
    "v1": {
        WEB: "docker",
        HOSTPID: "docker",
        POD_PAUSE: "kubernetes",
        POD_APP: "kubernetes",
        NOLIMIT: "docker",
        6000: "docker",
    },
    "hybrid": {
        WEB: "docker",
        HOSTPID: "docker",
        POD_PAUSE: "kubernetes",
        POD_APP: "kubernetes",
        NOLIMIT: "docker",
        6000: "docker",
    },
    "v2": {
        WEB: "docker",
        HOSTPID: "docker",
        POD_PAUSE: "kubernetes",
        POD_APP: "kubernetes",
        5000: "podman",
        5100: "podman",
        NOLIMIT: "docker",
        7000: "runc",
    },
}


@pytest.mark.parametrize("host", ["v1", "v2", "hybrid"])
def test_discover_fixture_containers(host: str) -> None:
    records = discover(str(FIXTURES / host / "proc"))
    assert {r.init_pid: r.kind for r in records} == EXPECTED[host]
    web = next(r for r in records if r.init_pid == WEB)
    assert (web.pid_ns, web.mnt_ns) == ("pid:[4026532298]", "mnt:[4026532296]")
    assert web.name == web.short_id == "8d2f1c4b7a9e"
    assert web.cgroup in (f"/docker/{ID}", f"/system.slice/docker-{ID}.scope")
    app = next(r for r in records if r.init_pid == POD_APP)
    # the pod member shares the pause container's pid namespace, not its mount namespace
    assert app.pid_ns == next(r for r in records if r.init_pid == POD_PAUSE).pid_ns
    assert app.mnt_ns == "mnt:[4026532415]"
    assert app.name == "pod6b1f5d3e/b7c6d5e4f3a2"


def test_discover_skips_processes_in_the_root_cgroup_and_vanished_ones(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    shutil.copytree(FIXTURES / "v1", root, symlinks=True)
    proc = root / "proc"
    # nolimit's init now lives in the root cgroup: not a container
    cgroup = proc / str(NOLIMIT) / "cgroup"
    cgroup.write_text("".join(line.rsplit(":", 1)[0] + ":/\n" for line in cgroup.read_text().splitlines()))
    # blkempty's init vanishes between the listing and the reads
    (proc / "6000" / "status").unlink()
    (proc / "6000" / "cgroup").unlink()
    assert [r.init_pid for r in discover(str(proc))] == [WEB, HOSTPID, POD_PAUSE, POD_APP]


@pytest.mark.parametrize("host", ["v1", "v2", "hybrid"])
def test_discovery_lists_exactly_the_containers_the_daemon_serves(host: str) -> None:
    proc = FIXTURES / host / "proc"
    records = {r.cgroup: r for r in discover(str(proc))}
    served = {}
    for entry in sorted(proc.iterdir()):
        if entry.name.isdigit():
            container = Resolver(str(proc)).resolve(int(entry.name))
            if container is not None:
                served[naming_path(container.cgroups)] = container
    assert sorted(served) == sorted(records)
    for path, record in records.items():
        assert Resolver(str(proc)).resolve(record.init_pid) == served[path]


def test_a_process_in_the_root_cgroup_is_a_host_process_for_both(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    (root / "proc" / str(HOSTPID) / "cgroup").write_text("0::/\n")  # `unshare -m` on the host
    assert Resolver(str(root / "proc")).resolve(HOSTPID) is None
    assert HOSTPID not in [r.init_pid for r in discover(str(root / "proc"))]


def test_discover_reuses_the_resolvers_init_cache() -> None:
    proc = str(FIXTURES / "v2" / "proc")
    resolver = Resolver(proc)
    first = discover(proc, resolver)
    assert discover(proc, resolver) == first
    assert resolver.init_of(2002, "pid:[4026532298]") == WEB


def test_v2_readers_in_sub_cgroups_of_their_own_are_the_whole_container() -> None:
    """Nested delegation (fixture "deleg"): init in init.scope, postgres in work.slice, both
    below the root of their cgroup namespace, which the cgroup2 mount's root names."""
    proc = str(FIXTURES / "v2" / "proc")
    resolver = Resolver(proc)
    deleg = "/machine.slice/deleg.scope"
    assert resolver.cgroups_of(7000) == {"": deleg + "/init.scope"}
    assert resolver.resolve(7000) == Container({"": deleg}, 7000)
    assert resolver.resolve(7001) == Container({"": deleg}, 7000)
    record = next(r for r in discover(proc) if r.init_pid == 7000)
    assert (record.cgroup, record.name) == (deleg, "deleg.scope")
    # The host's processes and containers without a namespace of their own stay where they are.
    assert resolver.resolve(2001) == Container({"": resolver.cgroups_of(2000)[""]}, 2000)


def test_a_reused_cgroup_namespace_number_is_looked_up_again(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    resolver = Resolver(str(root / "proc"), membership_seconds=0)
    assert resolver.resolve(7001) == Container({"": "/machine.slice/deleg.scope"}, 7000)
    # The namespace number now belongs to another container, elsewhere in the tree.
    other = "/machine.slice/other.scope"
    for pid in (7000, 7001):
        (root / "proc" / str(pid) / "cgroup").write_text(f"0::{other}/sub\n")
        mountinfo = root / "proc" / str(pid) / "mountinfo"
        mountinfo.write_text(mountinfo.read_text().replace("/machine.slice/deleg.scope", other))
    assert resolver.resolve(7001) == Container({"": other}, 7000)


def test_a_bind_of_the_hosts_cgroup_tree_lifts_nothing(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    mountinfo = root / "proc" / "7001" / "mountinfo"
    mountinfo.write_text(mountinfo.read_text().replace("0:70 /machine.slice/deleg.scope ", "0:70 / "))
    resolver = Resolver(str(root / "proc"))
    assert resolver.resolve(7001) == Container({"": "/machine.slice/deleg.scope/work.slice"}, 7000)
