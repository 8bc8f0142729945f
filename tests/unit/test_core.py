"""The core over fixture trees: tree, read semantics, errors and host fallback."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import containerfs.views
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.errors import IsADirectory, NotFound, ReadFailed
from containerfs.daemon.snapshots import MAX_SNAPSHOTS, Snapshots
from containerfs.views import block_stat
from containerfs.views.registry import OVERLAYS, VIEWS, device_views

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000  # the "web" container's init in every fixture host (see SCENARIO.md)
HOST_SHELL = 1100
WEB_EXEC = 2002  # `docker exec` into web: the same container, another reader
OTHER_INIT = 3000  # another container, with another memory limit


def test_every_view_module_is_registered() -> None:
    skip = ("base", "registry", "overlays", "pressure")  # pressure: what pressure_* share
    modules = [m.name for m in pkgutil.iter_modules(containerfs.views.__path__) if m.name not in skip]
    assert modules, "no view modules found"
    fixed = overlays = 0
    for name in modules:
        module = importlib.import_module(f"containerfs.views.{name}")
        if hasattr(module, "VIEW"):
            assert VIEWS.get(module.VIEW.path) is module.VIEW, f"{name} is not in the registry"
            fixed += 1
        elif hasattr(module, "OVERLAY"):
            assert OVERLAYS.get(module.OVERLAY.path) is module.OVERLAY, f"{name} is not in the registry"
            overlays += 1
        else:
            assert module is block_stat, f"{name} is neither a view, an overlay nor the device views"
    assert len(VIEWS) == fixed == 15 and overlays == 1
    # The device views are the registry's: one per disk and partition of the host.
    host = make_fs(FIXTURES / "v1").host
    assert len(device_views(host)) == 6 and device_views(host).keys() == block_stat.views(host).keys()


@pytest.fixture
def host_copy(tmp_path: Path) -> Path:
    """A writable copy of the v2 fixture host, for tests that change it."""
    target = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", target, symlinks=True)
    return target


def make_fs(root: Path) -> ContainerFS:
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


def web_cgroup(root: Path) -> Path:
    line = (root / "proc" / str(WEB_INIT) / "cgroup").read_text().splitlines()[0]
    return root / "cgroup" / line.split(":", 2)[2].lstrip("/")


def meminfo_value(text: bytes, key: str) -> int:
    for line in text.decode().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def test_tree() -> None:
    fs = make_fs(FIXTURES / "v2")
    assert fs.listdir("/") == ["proc", "sys"]
    assert fs.listdir("/proc") == [
        "cpuinfo",
        "diskstats",
        "loadavg",
        "meminfo",
        "pressure",
        "stat",
        "swaps",
        "uptime",
        "vmstat",
    ]
    assert fs.listdir("/sys/devices") == ["pci0000:00", "system", "virtual"]
    assert fs.listdir("/sys/devices/virtual/block/loop0") == ["stat"]
    assert fs.listdir("/proc/pressure") == ["cpu", "io", "memory"]
    assert fs.is_dir("/sys/devices") and not fs.is_dir("/proc/meminfo")
    for bad in ("/proc/nonexistent", "/proc/meminfo/x", "/sys/block", "/sys/devices/system/cpu/cpu0/subsystem", "/etc"):
        with pytest.raises(NotFound):
            fs.is_dir(bad)
    with pytest.raises(NotFound):
        fs.listdir("/proc/meminfo")


def test_read_errors() -> None:
    fs = make_fs(FIXTURES / "v2")
    with pytest.raises(NotFound):
        fs.open("/proc/nope", WEB_INIT)
    with pytest.raises(IsADirectory):
        fs.open("/proc", WEB_INIT)


def _read_rest(fs: ContainerFS, handle: int, first: bytes, pid: int, chunk_size: int = 7) -> bytes:
    whole = first
    while chunk := fs.read(handle, chunk_size, len(whole), pid):
        whole += chunk
    return whole


def test_offset_zero_renders_fresh_later_offsets_use_the_snapshot(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    current = web_cgroup(host_copy) / "memory.current"
    expected = fs.render_path("/proc/meminfo", WEB_INIT)
    handle = fs.open("/proc/meminfo", WEB_INIT)
    first = fs.read(handle, 7, 0, WEB_INIT)
    # The container's usage changes between two chunks of one read...
    before = int(current.read_text())
    current.write_text(f"{before + 100 * 1024 * 1024}\n")
    # ... yet the chunks form one consistent file: the snapshot taken at offset 0.
    whole = _read_rest(fs, handle, first, WEB_INIT)
    assert whole == expected
    # A re-read at offset 0 through the same open file (what top does) sees the new usage.
    again = fs.read(handle, 1 << 16, 0, WEB_INIT)
    assert meminfo_value(whole, "MemFree") - meminfo_value(again, "MemFree") == 100 * 1024
    fs.release(handle)
    assert len(fs.snapshots) == 0 and fs.snapshots.handles() == 0


def test_one_open_file_is_one_content_whichever_thread_reads(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    current = web_cgroup(host_copy) / "memory.current"
    handle = fs.open("/proc/meminfo", WEB_INIT)
    first = fs.read(handle, 7, 0, WEB_INIT)
    current.write_text(f"{int(current.read_text()) + 100 * 1024 * 1024}\n")
    # Another thread (a thread pool's worker) goes on reading the same descriptor.
    whole = _read_rest(fs, handle, first, WEB_EXEC)
    assert meminfo_value(whole, "MemFree") - meminfo_value(fs.render_path("/proc/meminfo", WEB_INIT), "MemFree") == (
        100 * 1024
    )


def test_nothing_of_one_open_file_is_visible_through_another() -> None:
    """The thread-id reuse attack: A reads the start of a file and exits without reaching
    the end; B, another container whose thread may carry A's id, opens the file and reads
    at an offset above 0.  B must get its own content, never A's."""
    fs = make_fs(FIXTURES / "v2")
    mine, theirs = fs.render_path("/proc/meminfo", OTHER_INIT), fs.render_path("/proc/meminfo", WEB_INIT)
    assert meminfo_value(mine, "MemTotal") != meminfo_value(theirs, "MemTotal")
    a = fs.open("/proc/meminfo", WEB_INIT)
    fs.read(a, 7, 0, WEB_INIT)  # A stops early: no read at the end, no release yet
    b = fs.open("/proc/meminfo", OTHER_INIT)
    assert a != b
    seen = fs.read(b, 1 << 16, 1, OTHER_INIT)
    assert seen == mine[1:], "an open file was served another open file's content"
    fs.release(b)
    # Handles are never reused, so a released one cannot name a later open file.
    assert len({fs.open("/proc/meminfo", WEB_INIT) for _ in range(100)}) == 100


def test_snapshots_of_readers_that_hold_many_descriptors_are_bounded() -> None:
    fs = make_fs(FIXTURES / "v2")
    handles = [fs.open("/proc/uptime", 10_000_000 + i) for i in range(MAX_SNAPSHOTS + 10)]
    for i, handle in enumerate(handles):
        fs.read(handle, 1, 0, 10_000_000 + i)  # host readers: pids the fixture lacks
    assert len(fs.snapshots) == MAX_SNAPSHOTS
    # The first handle lost its content: it renders again, for its own reader only.
    assert fs.read(handles[0], 1 << 16, 1, WEB_INIT) == fs.render_path("/proc/uptime", WEB_INIT)[1:]


def test_forgotten_handles_still_read_their_own_view() -> None:
    fs = make_fs(FIXTURES / "v2")
    fs.snapshots.max_handles = 4
    first = fs.open("/proc/cpuinfo", WEB_INIT)
    for _ in range(10):
        fs.read(fs.open("/proc/meminfo", WEB_INIT), 7, 0, WEB_INIT)
    assert fs.snapshots.handles() == 4
    assert fs.read(first, 1 << 20, 0, WEB_INIT) == fs.render_path("/proc/cpuinfo", WEB_INIT)
    assert len(fs.snapshots) <= 4


def test_reported_size_is_never_smaller_than_any_content() -> None:
    for host in ("v1", "v2", "hybrid"):
        fs = make_fs(FIXTURES / host)
        pids = [int(p.name) for p in (FIXTURES / host / "proc").iterdir() if p.name.isdigit()]
        for path in VIEWS:
            size = fs.size(path)
            assert size % 4096 == 0
            for pid in [*pids, 999999]:
                assert len(fs.render_path(path, pid)) <= size, (host, path, pid)


@pytest.mark.parametrize(
    ("max_count", "max_bytes", "sizes", "kept"),
    [
        (3, 1000, [10, 10, 10, 10], [1, 2, 3]),  # too many: the oldest goes
        (10, 25, [10, 10, 10], [1, 2]),  # too many bytes
        (10, 25, [40], [0]),  # one larger than the budget is still served
        (10, 25, [10, 40], [1]),
    ],
)
def test_snapshot_limits(max_count: int, max_bytes: int, sizes: list[int], kept: list[int]) -> None:
    store = Snapshots(max_count, max_bytes)
    handles = [store.open(3) for _ in sizes]
    assert all(Snapshots.kind(h) == 3 for h in handles)
    for handle, size in zip(handles, sizes):
        store.put(handle, b"x" * size)
    assert [i for i, h in enumerate(handles) if store.get(h) is not None] == kept
    assert store.bytes == sum(sizes[i] for i in kept)
    store.put(handles[kept[-1]], b"y")  # replacing keeps the byte count right
    store.release(handles[kept[-1]])
    assert store.bytes == sum(sizes[i] for i in kept[:-1])
    store.put(handles[kept[-1]], b"z")  # a released handle keeps nothing
    assert store.get(handles[kept[-1]]) is None


def test_host_reader_gets_host_file() -> None:
    fs = make_fs(FIXTURES / "v2")
    for path in VIEWS:
        host_file = FIXTURES / "v2" / ("proc" if path.startswith("proc/") else "sys") / path.split("/", 1)[1]
        assert fs.render_path(path, HOST_SHELL) == host_file.read_bytes(), path
    assert fs.stats.host_reads == len(VIEWS) and fs.stats.fallbacks == 0 and fs.stats.renders == 0
    fs.render_path("proc/meminfo", WEB_INIT)
    assert fs.stats.renders == 1 and fs.stats.host_reads == len(VIEWS)


@pytest.mark.parametrize(
    ("damage", "path"),
    [
        ("remove memory.current", "proc/meminfo"),
        ("garbage memory.max", "proc/meminfo"),
        ("garbage cpu.max", "sys/devices/system/cpu/online"),
        ("remove cpu.stat", "proc/stat"),
        ("remove cgroup dir", "proc/uptime"),
        ("garbage init stat", "proc/uptime"),
    ],
)
def test_a_container_reader_never_gets_host_figures(
    host_copy: Path, damage: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    fs = make_fs(host_copy)
    cgroup = web_cgroup(host_copy)
    if damage.startswith("remove cgroup"):
        shutil.rmtree(cgroup)
    elif damage.startswith("remove"):
        (cgroup / damage.split()[1]).unlink()
    elif damage == "garbage init stat":
        (host_copy / "proc" / str(WEB_INIT) / "stat").write_text("not a stat line")
    else:
        (cgroup / damage.split()[1]).write_text("garbage\n")
    with caplog.at_level(logging.WARNING), pytest.raises(ReadFailed):
        fs.render_path(path, WEB_INIT)
    assert fs.stats.fallbacks == 1
    assert fs.stats.errors == 0, "an expected failure (vanished or damaged files) is not a daemon error"
    assert "the read fails" in caplog.text


def test_a_vanished_reader_gets_the_host_file(caplog: pytest.LogCaptureFixture) -> None:
    fs = make_fs(FIXTURES / "v2")
    with caplog.at_level(logging.WARNING):
        content = fs.render_path("proc/cpuinfo", 999999)
    assert content == (FIXTURES / "v2" / "proc" / "cpuinfo").read_bytes()
    assert fs.stats.fallbacks == 1 and fs.stats.errors == 0


def test_a_reader_whose_cgroup_moved_and_vanished_is_resolved_again(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    expected = fs.render_path("proc/meminfo", OTHER_INIT)
    assert fs.render_path("proc/meminfo", WEB_INIT) != expected
    # web's init moves into the other container's cgroup and its own is removed, within
    # the time membership is remembered.
    old = web_cgroup(host_copy)
    other = (host_copy / "proc" / str(OTHER_INIT) / "cgroup").read_text()
    (host_copy / "proc" / str(WEB_INIT) / "cgroup").write_text(other)
    shutil.rmtree(old)
    assert fs.render_path("proc/meminfo", WEB_INIT) == expected
    assert fs.stats.fallbacks == 0


def test_a_recreated_cgroup_is_a_new_container(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    fs.render_path("proc/loadavg", WEB_INIT)
    for _ in range(12):
        fs.sampler.sample_all()
    assert float(fs.render_path("proc/loadavg", WEB_INIT).split()[0]) > 1
    stat_before = fs.render_path("proc/stat", WEB_INIT)
    # docker restart: the same path, a new directory.
    cgroup = web_cgroup(host_copy)
    saved = host_copy.parent / "saved"
    shutil.copytree(cgroup, saved)
    shutil.rmtree(cgroup)
    shutil.copytree(saved, cgroup)
    (cgroup / "cpu.stat").write_text("usage_usec 1000\nuser_usec 600\nsystem_usec 400\n")
    assert fs.render_path("proc/loadavg", WEB_INIT).split()[:3] == [b"0.00", b"0.00", b"0.00"]
    stat_after = fs.render_path("proc/stat", WEB_INIT)
    assert int(stat_after.split()[1]) < int(stat_before.split()[1]), "the old container's stat floor leaked"
    fs.sampler.sample_all()  # the sampler drops the old container's state
    assert len(fs.registry) == 1


def test_a_bug_in_a_view_is_counted_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = make_fs(FIXTURES / "v2")

    def broken(paths: dict[str, str]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fs.cgroups, "memory", broken)
    with pytest.raises(ReadFailed):
        fs.render_path("proc/meminfo", WEB_INIT)
    assert (fs.stats.fallbacks, fs.stats.errors) == (1, 1)
    assert fs.stats.last_error is not None


def test_failure_log_is_rate_limited(host_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    fs = make_fs(host_copy)
    (web_cgroup(host_copy) / "memory.current").unlink()
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            with pytest.raises(ReadFailed):
                fs.render_path("proc/meminfo", WEB_INIT)
    assert fs.stats.fallbacks == 50
    assert caplog.text.count("the read fails") == 1


def test_stat_never_goes_backwards(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    cpu_stat = web_cgroup(host_copy) / "cpu.stat"
    first = fs.render_path("proc/stat", WEB_INIT)
    # The counter source goes backwards (a cgroup recreated under the same path).
    cpu_stat.write_text("usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
    second = fs.render_path("proc/stat", WEB_INIT)

    def cpu_lines(text: bytes) -> list[list[int]]:
        return [[int(v) for v in line.split()[1:]] for line in text.decode().splitlines() if line.startswith("cpu")]

    for old, new in zip(cpu_lines(first), cpu_lines(second)):
        assert all(n >= o for o, n in zip(old, new))


def test_sampler_forgets_removed_cgroups(host_copy: Path) -> None:
    fs = make_fs(host_copy)
    fs.render_path("proc/meminfo", WEB_INIT)
    cgroup = web_cgroup(host_copy)
    assert len(fs.registry) == 1
    assert any(str(cgroup) in path for path in fs.files.paths())
    shutil.rmtree(cgroup)
    fs.sampler.sample_all()
    assert len(fs.registry) == 0
    assert not any(str(cgroup) in path for path in fs.files.paths())


def test_load_sampling_counts_running_and_blocked_threads() -> None:
    fs = make_fs(FIXTURES / "v2")
    fs.render_path("proc/loadavg", WEB_INIT)
    for _ in range(12):  # one minute of 5 s samples
        fs.sampler.sample_all()
    fields = fs.render_path("proc/loadavg", WEB_INIT).decode().split()
    # The web container has one thread in R and one in D (SCENARIO.md): load 2 after
    # a minute is 2 * (1 - 1/e).
    assert 1.2 <= float(fields[0]) <= 1.3
    assert float(fields[0]) > float(fields[1]) > float(fields[2]) > 0
    assert fields[3] == "1/5"


def test_sampler_passes_are_costed_and_failures_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = make_fs(FIXTURES / "v2")
    fs.render_path("proc/loadavg", WEB_INIT)
    fs.sampler.sample_pass()
    assert fs.sampler.passes == 1 and fs.sampler.last_pass_ns is not None and fs.sampler.last_pass_ns > 0
    assert fs.sampler.cpu_ns > 0 and fs.stats.errors == 0

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fs.sampler, "sample_all", broken)
    fs.sampler.sample_pass()
    assert fs.sampler.passes == 2 and fs.stats.errors == 1


def test_core_does_not_import_the_fuse_binding() -> None:
    code = "import sys, containerfs.daemon.core, containerfs.cli; print('mfusepy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
