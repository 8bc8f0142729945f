"""The sysfs block stat, vmstat, cpu directory, stat and loadavg computations (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerfs.cgroup.records import IoDevice
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.errors import NotFound
from containerfs.procfs.diskstats import parse_block_stat, render_block_stat
from containerfs.procfs.vmstat import parse_vmstat, render_vmstat
from containerfs.views.block_stat import block_devices
from containerfs.views.diskstats import device_counters
from containerfs.views.loadavg import namespace_last_pid
from containerfs.views.stat import other_lines, zeroed
from containerfs.views.vmstat import container_vmstat

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOSTS = ("v1", "v2", "hybrid")
WEB_INIT, HOSTPID, HOST_SHELL = 2000, 3000, 1100
SDA = "sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"
NVME = "sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"


def make_fs(root: Path) -> ContainerFS:
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


# -- block stat ------------------------------------------------------------------------


def test_block_stat_round_trip_keeps_the_kernels_columns() -> None:
    text = "       1        2 12345678        0\n"
    assert parse_block_stat(text) == (1, 2, 12345678, 0)
    assert render_block_stat((1, 2, 12345678, 0)) == text


@pytest.mark.parametrize(
    ("io", "expected"),
    [
        (IoDevice(), (0,) * 17),
        (
            IoDevice(rbytes=1024, wbytes=4096, rios=2, wios=1, dbytes=512, dios=1),
            (2, 0, 2, 0, 1, 0, 8, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0),
        ),
    ],
)
def test_device_counters_take_only_the_cgroups_counts(io: IoDevice, expected: tuple[int, ...]) -> None:
    host = tuple(range(100, 117))  # every host column non-zero: none may leak through
    assert device_counters(host, io) == expected


def test_block_devices_follow_the_sys_block_links() -> None:
    devices = block_devices(str(FIXTURES / "v1" / "sys"))
    assert [(d.major, d.minor) for d in devices] == [(7, 0), (259, 0), (259, 1), (8, 0), (8, 1), (8, 2)]
    assert devices[0].path == "devices/virtual/block/loop0"
    assert devices[-1].path == SDA.removeprefix("sys/") + "/sda2"


def test_block_devices_skip_a_link_out_of_the_sys_root(tmp_path: Path) -> None:
    (tmp_path / "block").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "dev").write_text("8:0\n")
    os.symlink(str(tmp_path / "outside"), tmp_path / "block" / "evil")
    sys_root = tmp_path / "sysroot"
    sys_root.mkdir()
    (sys_root / "block").symlink_to(tmp_path / "block")
    assert block_devices(str(sys_root)) == []


@pytest.mark.parametrize("host", HOSTS)
def test_sys_block_stat_agrees_with_diskstats(host: str) -> None:
    """One computation, two renderings: each diskstats line equals that device's stat file."""
    fs = make_fs(FIXTURES / host)
    for pid in (WEB_INIT, HOSTPID, 5200, 4001):
        diskstats = {
            line.split()[2]: line.split()[3:] for line in fs.render_path("proc/diskstats", pid).decode().splitlines()
        }
        for path, name in ((SDA, "sda"), (f"{SDA}/sda1", "sda1"), (NVME, "nvme0n1")):
            counters = fs.render_path(f"{path}/stat", pid).decode().split()
            assert len(counters) == 17
            assert counters == diskstats.get(name, ["0"] * 17), (host, pid, name)
    assert fs.stats.fallbacks == 0


def test_sys_block_stat_of_the_web_container() -> None:
    # SCENARIO.md: web read 100 MiB / 2560 ios and wrote 50 MiB / 1280 ios on 8:0.
    counters = make_fs(FIXTURES / "v1").render_path(f"{SDA}/stat", WEB_INIT).decode().split()
    assert [int(counters[i]) for i in (0, 2, 4, 6)] == [2560, 204800, 1280, 102400]


def test_a_device_that_appears_is_listed_within_a_second(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    fs = make_fs(root)
    assert "loop1" not in fs.listdir("sys/devices/virtual/block")
    device = root / "sys/devices/virtual/block/loop1"
    device.mkdir()
    (device / "dev").write_text("7:1\n")
    (device / "stat").write_text(" ".join(["       5"] * 17) + "\n")
    (root / "sys/block/loop1").symlink_to("../devices/virtual/block/loop1")
    fs._trees = type(fs._trees)(0.0)  # the next call lists again
    assert "loop1" in fs.listdir("sys/devices/virtual/block")
    assert fs.render_path("sys/devices/virtual/block/loop1/stat", WEB_INIT).split() == [b"0"] * 17


# -- vmstat ----------------------------------------------------------------------------

HOST_VMSTAT = [("nr_free_pages", 9), ("nr_anon_pages", 9), ("nr_kernel_stack", 9), ("numa_hit", 9)]
HOST_VMSTAT += [("pgpgin", 9), ("pgpgout", 9), ("pswpin", 9), ("pgfault", 9), ("workingset_refault_file", 9)]


@pytest.mark.parametrize(
    ("io", "events", "expected"),
    [
        (
            {(8, 0): IoDevice(rbytes=10 * 1024, wbytes=3 * 1024), (8, 16): IoDevice(rbytes=2048, wbytes=1023)},
            {"pgfault": 77, "workingset_refault_file": 5, "pswpin": 4},
            {"pgpgin": 12, "pgpgout": 3, "pgfault": 77, "workingset_refault_file": 5, "pswpin": 4},
        ),
        # no per-cgroup I/O counters at all: paging I/O stays the host's, like diskstats
        (None, {"pgfault": 1}, {"pgpgin": 9, "pgpgout": 9, "pgfault": 1, "workingset_refault_file": 0, "pswpin": 0}),
        # a memory.stat without pswpin (v1, older v2): 0, never the host's
        ({}, {}, {"pgpgin": 0, "pgpgout": 0, "pgfault": 0, "workingset_refault_file": 0, "pswpin": 0}),
    ],
)
def test_container_vmstat(io: dict | None, events: dict[str, int], expected: dict[str, int]) -> None:
    stat = {"anon": 8192 * 3, "kernel_stack": 16384}
    fields = dict(container_vmstat(HOST_VMSTAT, io, events, stat, free_kb=40, page_size=4096))
    assert list(fields) == [name for name, _ in HOST_VMSTAT]  # the host's order, nothing added
    assert fields["nr_free_pages"] == 10 and fields["nr_anon_pages"] == 6 and fields["nr_kernel_stack"] == 16
    assert fields["numa_hit"] == 0
    assert {k: fields[k] for k in expected} == expected


def test_vmstat_round_trip() -> None:
    text = "nr_free_pages 5\npgpgin 12\n"
    assert render_vmstat(parse_vmstat(text)) == text


@pytest.mark.parametrize("host", HOSTS)
def test_vmstat_of_the_web_container(host: str) -> None:
    fields = dict(parse_vmstat(make_fs(FIXTURES / host).render_path("proc/vmstat", WEB_INIT).decode()))
    # SCENARIO.md: 100 MiB read, 50 MiB written on 8:0; usage 300 MiB -> pgfault 300*256*9+101
    assert fields["pgpgin"] == 102400 and fields["pgpgout"] == 51200
    usage = 300 * 1024 * 1024
    assert fields["pgfault"] == usage // 4096 * 9 + 101
    assert fields["workingset_refault_file"] == usage // 16384
    assert fields["pswpin"] == (64 * 1024 * 1024 // 8192 if host == "v2" else 0)  # v1 has no pswpin
    assert fields["nr_free_pages"] == 217088 // 4
    assert fields["numa_hit"] == fields["nr_dirty_threshold"] == 0


# -- /proc/stat ------------------------------------------------------------------------


def test_stat_other_lines() -> None:
    host = ["intr 120 3 0 7", "ctxt 999", "btime 1763756400", "processes 41", "procs_running 9", "procs_blocked 2"]
    assert other_lines(host, 2, 1) == [
        "intr 0 0 0 0",
        "ctxt 0",
        "btime 1763756400",
        "processes 0",
        "procs_running 2",
        "procs_blocked 1",
    ]
    assert zeroed("softirq 5 1 2 2") == "softirq 0 0 0 0"


@pytest.mark.parametrize("host", HOSTS)
def test_stat_idle_is_the_containers_age(host: str) -> None:
    """web's init started at 350000.00 s, the host is up 354017.28 s: 401728 ticks per CPU."""
    text = make_fs(FIXTURES / host).render_path("proc/stat", WEB_INIT).decode()
    cpus = [line.split() for line in text.splitlines() if line.startswith("cpu") and not line.startswith("cpu ")]
    assert len(cpus) == 2
    for fields in cpus:
        user, system, idle, iowait, steal = (int(fields[i]) for i in (1, 3, 4, 5, 8))
        assert user + system + idle == 401728 and iowait == steal == 0
    assert "procs_running 2" in text  # R thread 2005 + the reader
    assert "btime 1763756400" in text


# -- cpu directory ---------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_cpu_directory_lists_the_containers_cpus(host: str) -> None:
    fs = make_fs(FIXTURES / host)
    cpu = "sys/devices/system/cpu"
    # hostpid: cpuset 1,3 -> cpu0, cpu1; web: quota 1.5 -> 2; the host shell: all 4
    assert [n for n in fs.listdir(cpu, HOSTPID) if n.startswith("cpu")] == ["cpu0", "cpu1"]
    assert [n for n in fs.listdir(cpu, HOST_SHELL) if n.startswith("cpu")] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert {"online", "possible", "present", "offline", "kernel_max", "vulnerabilities"} <= set(
        fs.listdir(cpu, HOSTPID)
    )
    for name in ("online", "possible", "present"):
        assert fs.render_path(f"{cpu}/{name}", HOSTPID) == b"0-1\n"
    assert fs.render_path(f"{cpu}/offline", HOSTPID) == b"\n"
    # renumbered like cpuinfo: the container's cpu1 is the host's cpu3
    assert fs.render_path(f"{cpu}/cpu1/topology/core_id", HOSTPID) == b"3\n"
    assert fs.render_path(f"{cpu}/cpu1/topology/core_id", HOST_SHELL) == b"1\n"
    assert fs.render_path(f"{cpu}/vulnerabilities/meltdown", HOSTPID) == b"Not affected\n"
    assert fs.listdir(f"{cpu}/cpu1", HOSTPID) == ["online", "topology"]  # the subsystem link is left out
    with pytest.raises(NotFound):
        fs.render_path(f"{cpu}/cpu0/subsystem", HOSTPID)
    with pytest.raises(NotFound):
        fs.listdir(f"{cpu}/cpu9", HOSTPID)
    assert fs.stats.fallbacks == 0


def test_cpu_directory_keeps_the_hosts_read_permissions(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "v1"
    shutil.copytree(FIXTURES / "v1", root, symlinks=True)
    secret = root / "sys/devices/system/cpu/cpu0/crash_notes"
    secret.write_text("ffff\n")
    secret.chmod(0o600)  # root-only on the host: readers in containers must not get it
    fs = make_fs(root)
    assert fs.file_mode("sys/devices/system/cpu/cpu0/crash_notes") == 0o400
    assert fs.file_mode("sys/devices/system/cpu/online") == 0o444
    assert fs.file_mode("sys/devices/system/cpu/cpu0/topology/core_id") == 0o444


# -- loadavg ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader", "task", "expected"),
    [
        ([2000, 1], [2006, 16], 16),  # the container's newest task, in the container's numbers
        ([2100, 30], [2006, 16], 30),  # the reader is newer than the sample
        ([2000, 1], None, 1),  # the sampled task exited
        ([1100], [2006, 16], 2006),  # a reader in the host's namespace sees host pids
        ([2000, 1], [7000], 1),  # a task outside the reader's namespace names nothing there
    ],
)
def test_namespace_last_pid(reader: list[int], task: list[int] | None, expected: int) -> None:
    assert namespace_last_pid(reader, task) == expected


@pytest.mark.parametrize("host", HOSTS)
def test_loadavg_last_pid_is_in_the_readers_namespace(host: str) -> None:
    text = make_fs(FIXTURES / host).render_path("proc/loadavg", WEB_INIT).decode()
    assert text.split()[4] == "16"  # thread 2006 is NSpid 16 in web's namespace


# -- what injection binds ----------------------------------------------------------------


def test_served_views_bind_the_cpu_directory_whole(tmp_path: Path) -> None:
    from containerfs.inject.attach import served_views

    for rel in ("proc/meminfo", "sys/devices/system/cpu/online", "sys/devices/system/cpu/cpu0/topology/core_id"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    (tmp_path / "sys/devices/virtual/block/loop0").mkdir(parents=True)
    (tmp_path / "sys/devices/virtual/block/loop0/stat").write_text("0\n")
    assert served_views(str(tmp_path)) == (
        "proc/meminfo",
        "sys/devices/system/cpu",
        "sys/devices/virtual/block/loop0/stat",
    )


def test_bind_targets() -> None:
    from containerfs.views.overlays import bind_targets

    paths = ["proc/stat", "sys/devices/system/cpu/online", "sys/devices/system/cpu/possible", "sys/devices/system/cpuX"]
    assert bind_targets(paths) == ["proc/stat", "sys/devices/system/cpu", "sys/devices/system/cpuX"]


def test_the_daemon_serves_every_target_it_binds() -> None:
    """Each bind target of the fixture host is a file or directory of the tree."""
    from containerfs.views.overlays import bind_targets

    fs = make_fs(FIXTURES / "v1")
    targets = bind_targets(fs.views())
    assert len(targets) == 8 + 3 + 1 + 6  # the proc views, pressure, the cpu directory, 3 disks and 3 partitions
    for target in targets:
        assert fs.is_dir(target) == (target == "sys/devices/system/cpu")


def test_the_watcher_plans_every_container_again_when_a_device_appears(tmp_path: Path) -> None:
    from containerfs.inject.attach import ViewSource
    from containerfs.inject.service import InjectionService

    mountpoint = tmp_path / "views"
    served = ["proc/meminfo"]  # what the daemon's core serves (the service never walks its mount)
    service = InjectionService(str(mountpoint), "/proc", str(tmp_path / "run"), None, views=lambda: tuple(served))
    source = ViewSource(str(mountpoint), "containerfs:x", "0:1", ("proc/meminfo",))
    service._seen = {"mnt:[1]", "mnt:[2]"}
    assert service._refresh(source) is source and service._seen == {"mnt:[1]", "mnt:[2]"}  # nothing new
    served.append("sys/devices/virtual/block/loop9/stat")
    refreshed = service._refresh(source)
    assert refreshed.views == ("proc/meminfo", "sys/devices/virtual/block/loop9/stat")
    assert service._seen == set()  # every container is looked at again on this pass


def test_stat_idle_never_goes_backwards_when_the_container_looks_younger(tmp_path: Path) -> None:
    """A later start time (another init, clock skew) shrinks the age: served idle holds its floor."""
    import shutil

    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    fs = make_fs(root)

    def idles() -> list[int]:
        text = fs.render_path("proc/stat", WEB_INIT).decode()
        return [int(line.split()[4]) for line in text.splitlines() if line.startswith("cpu")]

    before = idles()
    stat_file = root / "proc" / str(WEB_INIT) / "stat"
    head, _, tail = stat_file.read_text().rpartition(")")
    fields = tail.split()
    fields[19] = str(int(fields[19]) + 100_000)  # started 1000 s later
    stat_file.write_text(head + ") " + " ".join(fields) + "\n")
    fs.resolver._recent = type(fs.resolver._recent)(0.0)
    assert idles() == before
    # without the floor (a fresh daemon) the younger container's idle is 1000 s less per CPU
    fresh = make_fs(root).render_path("proc/stat", WEB_INIT).decode().splitlines()[1]
    assert int(fresh.split()[4]) == before[1] - 100_000
