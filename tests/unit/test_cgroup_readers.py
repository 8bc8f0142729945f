"""The v1 and v2 readers behind one protocol: one reader per layout, the same records,
and a removed cgroup told apart from an absent hierarchy or controller."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from containerfs.cgroup.layout import detect
from containerfs.cgroup.reader import CgroupGone, CgroupReader, NotMounted, open_reader
from containerfs.cgroup.v1 import V1Reader
from containerfs.cgroup.v2 import V2Reader
from containerfs.daemon.core import ContainerFS, Options
from containerfs.host.fsread import FileCache
from containerfs.procfs.process import parse_proc_cgroup

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB, WEB_SUB = 2000, 2001  # SCENARIO.md: web's init; a process in a sub-cgroup without controllers
TASK_HIERARCHIES = ("cpu", "cpuacct", "memory", "pids")


def reader(root: Path) -> CgroupReader:
    return open_reader(detect(str(root / "cgroup")), 100, FileCache(max_open=64))


def cgroups_of(root: Path, pid: int) -> dict[str, str]:
    return parse_proc_cgroup((root / "proc" / str(pid) / "cgroup").read_text())


@pytest.fixture(params=["v1", "v2", "hybrid"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A writable copy of a fixture host."""
    target = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, target, symlinks=True)
    return target


@pytest.mark.parametrize(("layout", "kind"), [("v1", V1Reader), ("v2", V2Reader), ("hybrid", V1Reader)])
def test_one_reader_per_layout_a_hybrid_hosts_controllers_are_v1(layout: str, kind: type) -> None:
    assert type(reader(FIXTURES / layout)) is kind


def test_v1_and_v2_give_the_same_records() -> None:
    v1, v2 = reader(FIXTURES / "v1"), reader(FIXTURES / "v2")
    p1, p2 = cgroups_of(FIXTURES / "v1", WEB), cgroups_of(FIXTURES / "v2", WEB)
    m1, m2 = v1.memory(p1), v2.memory(p2)
    assert m1._replace(stat={}) == m2._replace(stat={})
    # generate.py writes swapcached 0 for v1 and a share of the swap for v2.
    common = set(m1.stat) - {"swapcached"}
    assert {k: m1.stat[k] for k in common} == {k: m2.stat[k] for k in common}
    for read in ("pids", "cpu_limits", "io", "oom_kills"):
        assert getattr(v1, read)(p1) == getattr(v2, read)(p2), read


def remove_cgroup(root: Path, paths: dict[str, str]) -> None:
    for path in set(paths.values()):
        for hierarchy in [root / "cgroup", *sorted((root / "cgroup").iterdir())]:
            target = hierarchy / path.lstrip("/")
            if target.is_dir() and target != hierarchy:
                shutil.rmtree(target)


def test_a_removed_cgroup_is_gone(host: Path) -> None:
    cgroups, paths = reader(host), cgroups_of(host, WEB)
    assert cgroups.thread_ids(paths)
    remove_cgroup(host, paths)
    for read in (cgroups.memory, cgroups.cpu_usage, cgroups.thread_ids, cgroups.process_ids):
        with pytest.raises(CgroupGone):
            read(paths)


def test_an_unmounted_hierarchy_is_not_gone(host: Path) -> None:
    cgroups, paths = reader(host), cgroups_of(host, WEB)
    if host.name == "v2":
        shutil.rmtree(host / "cgroup")
    else:
        for name in TASK_HIERARCHIES:
            shutil.rmtree(host / "cgroup" / name)
    for read in (cgroups.memory, cgroups.thread_ids, cgroups.process_ids):
        with pytest.raises(NotMounted):
            read(paths)


def test_a_controller_off_in_a_live_cgroup_is_not_gone() -> None:
    # websub's cgroup exists but web enables no controllers for it: no memory.current.
    with pytest.raises(NotMounted):
        reader(FIXTURES / "v2").memory(cgroups_of(FIXTURES / "v2", WEB_SUB))


def test_a_process_without_a_cgroup_in_a_hierarchy_is_not_gone() -> None:
    paths = cgroups_of(FIXTURES / "v1", WEB)
    del paths["memory"]
    with pytest.raises(NotMounted):
        reader(FIXTURES / "v1").memory(paths)


def make_fs(root: Path) -> ContainerFS:
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


def test_sampler_keeps_a_container_whose_hierarchy_is_unmounted(host: Path) -> None:
    fs = make_fs(host)
    fs.render_path("proc/loadavg", WEB)
    assert len(fs.registry) == 1
    if host.name == "v2":
        shutil.rmtree(host / "cgroup")
    else:
        for name in TASK_HIERARCHIES:
            shutil.rmtree(host / "cgroup" / name)
    fs.sampler.sample_all()
    assert len(fs.registry) == 1 and fs.stats.errors == 0


def test_sampler_forgets_a_removed_cgroup(host: Path) -> None:
    fs = make_fs(host)
    fs.render_path("proc/loadavg", WEB)
    remove_cgroup(host, cgroups_of(host, WEB))
    fs.sampler.sample_all()
    assert len(fs.registry) == 0 and fs.stats.errors == 0
