"""pids.current / pids.max and OOM kill counters over the fixture hosts (SCENARIO.md figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerfs.cgroup.layout import detect
from containerfs.cgroup.reader import CgroupReader, open_reader
from containerfs.cgroup.records import PidsCounters
from containerfs.host.fsread import FileCache
from containerfs.procfs.process import parse_proc_cgroup

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def reader(host: str) -> CgroupReader:
    return open_reader(detect(str(FIXTURES / host / "cgroup")), os.sysconf("SC_CLK_TCK"), FileCache(max_open=64))


def cgroups_of(host: str, pid: int) -> dict[str, str]:
    return parse_proc_cgroup((FIXTURES / host / "proc" / str(pid) / "cgroup").read_text())


# (pid, pids.current, effective pids.max, oom kills): web 2000, pause 4000, app 4001, nolimit 5200
CASES = [
    (2000, 5, 1024, 1),
    (4000, 1, 4096, 0),  # pause: its own pids.max is max, the pod's 4096 applies
    (4001, 1, 4096, 2),
    (5200, 1, None, 0),
]


@pytest.mark.parametrize("host", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize(("pid", "current", "limit", "kills"), CASES)
def test_pids_and_oom_kills(host: str, pid: int, current: int, limit: int | None, kills: int) -> None:
    cgroups = reader(host)
    paths = cgroups_of(host, pid)
    assert cgroups.pids(paths) == PidsCounters(current, limit)
    assert cgroups.oom_kills(paths) == kills


@pytest.mark.parametrize("host", ["v1", "v2"])
def test_oom_kills_are_hierarchical(host: str) -> None:
    cgroups = reader(host)
    pod = cgroups_of(host, 4001)
    pod = {controller: path.rsplit("/", 1)[0] for controller, path in pod.items()}
    assert cgroups.oom_kills(pod) == 2


def test_v2_cgroup_without_pids_controller() -> None:
    # websub (2001) has only core files: web enables no controllers for it.
    assert reader("v2").pids(cgroups_of("v2", 2001)) is None
    assert reader("v2").oom_kills(cgroups_of("v2", 2001)) is None


def test_oom_kills_absent_on_old_v1_kernels(tmp_path: Path) -> None:
    # Before Linux 4.13 memory.oom_control has no oom_kill line.
    root = tmp_path / "cgroup"
    for controller in ("memory", "pids"):
        (root / controller / "c").mkdir(parents=True)
    (root / "memory" / "c" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    cgroups = open_reader(detect(str(root)), 100, FileCache(max_open=8))
    assert cgroups.oom_kills({"memory": "/c", "pids": "/c"}) is None
